/**
 * A swap of state stores (Redis to PostgreSQL) when something breaks half-way,
 * on real daprd: two service replicas, each with its own daprd loading both
 * stores' Components, driven by the operator's own swap driver
 * (src/controller/swap.ts) while a client keeps creating, changing, deleting
 * and reading tasks. The new store dying during the backfill holds the swap
 * before the flip, reported, while writes go on; a replica killed mid-swap and
 * replaced holds writes until the driver has told it the plan, then serves.
 * Either way, once the swap is done, nothing acknowledged is lost.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SERVICE_ENV, type StoreRef, type SwapPlan } from '../../src/api/contract.ts';
import { SWAP_PHASES } from '../../src/api/resource.ts';
import {
  DEFAULT_SWAP_SETTINGS,
  startSwap,
  stepSwap,
  type SwapPhase,
  type SwapPods,
  type SwapState,
} from '../../src/controller/swap.ts';
import { names } from '../../src/controller/names.ts';
import type { Task } from '../../src/service/schemas/task.ts';
import { waitUntil } from '../../testbed/harness/process.ts';
import { dedicatedPostgres, type DedicatedStore } from '../support/dedicated-store.ts';
import { jsonClient, type JsonClient, type JsonResponse } from '../support/http.ts';
import { driveSwap, emptyModel, lostOrWrong, runLoad, seed, swapPods, type LoadModel } from '../support/swap-load.ts';
import { startTaskServiceStack, type TaskServiceStack } from '../support/task-service-stack.ts';

const testbed = inject('testbed');
const CONTROL_TOKEN = 'swap-faults-control-token-0123456789';
const SETTINGS = { ...DEFAULT_SWAP_SETTINGS, fenceTimeoutMs: 5_000, stepTimeoutMs: 20_000 };
const WORKERS = 6;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const before = (phase: SwapPhase, other: SwapPhase): boolean => SWAP_PHASES.indexOf(phase) < SWAP_PHASES.indexOf(other);

/** A write the load made, as its client saw it. */
interface WriteOutcome {
  startedAt: number;
  ms: number;
  status: number;
}

/**
 * The load's way in, like a Service in front of the replicas: the endpoints
 * the load spreads over (a test takes one out and puts it back, as Kubernetes
 * does with a pod that is not serving), the requests in flight to each, and
 * every write's outcome.
 */
class Endpoints {
  /** What runLoad reads on every request: changed in place. */
  readonly serving: JsonClient[] = [];
  readonly writes: WriteOutcome[] = [];
  private readonly clients = new Map<string, JsonClient>();
  private readonly inflight = new Map<string, number>();

  constructor(urls: string[]) {
    for (const url of urls) {
      const api = jsonClient(url);
      const client: JsonClient = {
        request: async <T>(method: string, path: string, body?: unknown, headers?: Record<string, string>) => {
          this.inflight.set(url, (this.inflight.get(url) ?? 0) + 1);
          const startedAt = performance.now();
          try {
            const response: JsonResponse<T> = await api.request<T>(method, path, body, headers);
            if (method !== 'GET')
              this.writes.push({ startedAt, ms: performance.now() - startedAt, status: response.status });
            return response;
          } finally {
            this.inflight.set(url, (this.inflight.get(url) ?? 1) - 1);
          }
        },
      };
      this.clients.set(url, client);
      this.serving.push(client);
    }
  }

  /** Stops sending `url` requests and waits for those it has in flight. */
  async takeOut(url: string): Promise<void> {
    const client = this.clients.get(url);
    this.serving.splice(this.serving.indexOf(client as JsonClient), 1);
    await waitUntil(() => Promise.resolve((this.inflight.get(url) ?? 0) === 0), {
      what: `requests in flight to ${url} to finish`,
      timeoutMs: 15_000,
      intervalMs: 5,
    });
  }

  putBack(url: string): void {
    this.serving.push(this.clients.get(url) as JsonClient);
  }

  writesBetween(from: number, to: number): WriteOutcome[] {
    return this.writes.filter((write) => write.startedAt >= from && write.startedAt < to);
  }
}

/** The client load over `endpoints` until `stop` is called. */
function startLoad(endpoints: Endpoints, model: LoadModel): { stop: () => Promise<void> } {
  const { promise, resolve } = Promise.withResolvers<undefined>();
  const load = runLoad(endpoints.serving, model, WORKERS, promise);
  return {
    stop: async () => {
      resolve(undefined);
      await load;
    },
  };
}

/** What one step of the driver left, as the operator would record it. */
interface Step {
  phase: SwapPhase;
  blocked: string | undefined;
}

const describeStep = (step: Step): string => `${step.phase}${step.blocked === undefined ? '' : ` (${step.blocked})`}`;

/** Steps the swap until `until` (default: Completed) with the shared driver loop; phases entered and blocks in `journal`. */
async function drive(
  pods: SwapPods,
  state: SwapState,
  journal: string[],
  until?: (state: SwapState) => boolean,
): Promise<SwapState> {
  const result = await driveSwap(pods, SETTINGS, state, until);
  journal.push(...result.blocked.map((blocked) => `blocked in ${blocked}`));
  journal.push(...result.phases.slice(1).map(({ phase }) => phase));
  return result.state;
}

/** One step of the driver, in `journal`. */
async function step(pods: SwapPods, state: SwapState, journal: string[]): Promise<SwapState> {
  const next = await stepSwap(state, pods, SETTINGS);
  journal.push(describeStep(next));
  return next;
}

const sameStore = (a: StoreRef, b: StoreRef): boolean => a.component === b.component && a.generation === b.generation;

/** The pod the driver runs copier jobs on: the first by name. */
const jobPod = (urls: string[]): string => [...urls].sort()[0] as string;

/** Every replica's view: nothing acknowledged missing or wrong, and the swap left it on `to` alone, owing nothing. */
async function expectNothingLost(
  stack: TaskServiceStack,
  pods: SwapPods,
  model: LoadModel,
  to: StoreRef,
): Promise<void> {
  for (const replica of stack.replicas) {
    const report = await pods.report(replica.url);
    expect(report.plan.truth).toEqual(to);
    expect(report.plan.mirror).toBeNull();
    expect(report.debt).toBe(0);
    expect((await lostOrWrong(jsonClient(replica.url), model)).problems).toEqual([]);
  }
  expect(model.wrongReads).toEqual([]);
}

/** The load's requests and failures (the first few of them), for the log. */
const requestsLine = (model: LoadModel): string =>
  [`${model.requests} requests, ${model.failures.length} failed`, ...model.failures.slice(0, 10)].join(' | ');

describe('a swap of state stores when PostgreSQL, the new store, is stopped during the backfill', () => {
  let store: DedicatedStore;
  let stack: TaskServiceStack;
  let redis: StoreRef;
  let postgresql: StoreRef;

  beforeAll(async () => {
    store = await dedicatedPostgres(join(testbed.dir, 'swap-faults-postgresql'), testbed);
    stack = await startTaskServiceStack(testbed, {
      name: 'swap-pgdown',
      backend: 'redis',
      stores: store.stores,
      swap: { controlToken: CONTROL_TOKEN, replicas: 2 },
    });
    redis = { component: names.stateComponent(stack.taskApi, 'redis'), generation: '0' };
    postgresql = { component: names.stateComponent(stack.taskApi, 'postgresql'), generation: 'g1' };
  }, 180_000);

  afterAll(async () => {
    await stack.stop();
    await store.stop();
  });

  it('holds the swap before the flip and says why, keeps acknowledging writes, and loses nothing once PostgreSQL is back', async () => {
    const model = emptyModel();
    const urls = stack.replicas.map((replica) => replica.url);
    const endpoints = new Endpoints(urls);
    const pods = swapPods(() => urls, CONTROL_TOKEN);
    await seed(endpoints.serving, model, 1_000);
    expect((await lostOrWrong(jsonClient(urls[0] as string), model)).problems).toEqual([]);
    const load = startLoad(endpoints, model);
    const journal: string[] = [];
    let state = await drive(pods, startSwap(redis, postgresql, 0), journal, (s) => s.phase === 'Backfill');
    expect(state.phase).toBe('Backfill');

    // The backfill step runs; PostgreSQL is killed once the copier has started walking.
    const backfill = stepSwap(state, pods, SETTINGS);
    let walkedAtKill = 0;
    await waitUntil(
      async () => {
        const job = (await pods.report(jobPod(urls))).job;
        walkedAtKill = job?.walked ?? 0;
        return job?.kind === 'backfill' && (job.walked > 0 || job.state !== 'running');
      },
      { what: 'the backfill to start', timeoutMs: 20_000, intervalMs: 5 },
    );
    await store.kill();
    const downAt = performance.now();
    state = await backfill;
    journal.push(describeStep(state));
    const whileDown: Step[] = [{ phase: state.phase, blocked: state.blocked }];
    for (let more = 0; more < 3; more++) {
      state = await step(pods, state, journal);
      whileDown.push({ phase: state.phase, blocked: state.blocked });
    }
    // Writes go on through the outage for a while longer.
    await sleep(2_000);
    const debtWhileDown = (await Promise.all(urls.map((url) => pods.report(url)))).map((report) => report.debt);
    const upAt = performance.now();
    await store.restart();
    const backAt = performance.now();
    const during = endpoints.writesBetween(downAt, upAt);

    state = await drive(pods, state, journal);
    await load.stop();

    const slowest = Math.max(...during.map((write) => write.ms));
    console.log(
      `PostgreSQL killed with the backfill at ${walkedAtKill} entries walked, down ${Math.round(backAt - downAt)} ms ` +
        `(restart ${Math.round(backAt - upAt)} ms); while down: ${during.length} writes, ` +
        `${during.filter((write) => write.status < 300).length} acknowledged, slowest ${Math.round(slowest)} ms, ` +
        `statuses ${[...new Set(during.map((write) => write.status))].join(',')}, debt per pod ${debtWhileDown.join(', ')}\n` +
        `steps: ${journal.join(' > ')}\n` +
        `longest fence ${state.longestFenceMs} ms, flip retries ${state.flipRetries}, ` +
        requestsLine(model),
    );

    // Held before the flip, and saying why (what status shows as Degraded).
    for (const step of whileDown) {
      expect(before(step.phase, 'Flip')).toBe(true);
      expect(step.blocked).toMatch(/backfill failed/);
    }
    // The old store stays the source of truth: writes are acknowledged, their mirror writes owed.
    expect(during.length).toBeGreaterThan(0);
    expect(during.filter((write) => write.status >= 300)).toEqual([]);
    expect(debtWhileDown.reduce((sum, debt) => sum + debt, 0)).toBeGreaterThan(0);

    expect(state.phase).toBe('Completed');
    expect(model.failures).toEqual([]);
    await expectNothingLost(stack, pods, model, postgresql);
  }, 300_000);
});

describe('a swap of state stores when a replica is killed mid-swap', () => {
  let stack: TaskServiceStack;
  let redis: StoreRef;
  let postgresql: StoreRef;
  let endpoints: Endpoints;
  let pods: SwapPods;
  // One client's view for both tests: the second swaps back what the first moved.
  const model = emptyModel();
  // The plan pods start from, as the operator's ConfigMap holds it: published before any pod is told.
  let planFile: string;
  let published: SwapPlan | undefined;
  const urls = (): string[] => stack.replicas.map((replica) => replica.url);

  beforeAll(async () => {
    stack = await startTaskServiceStack(testbed, {
      name: 'swap-crash',
      backend: 'redis',
      stores: testbed,
      swap: { controlToken: CONTROL_TOKEN, replicas: 2 },
    });
    redis = { component: names.stateComponent(stack.taskApi, 'redis'), generation: '0' };
    postgresql = { component: names.stateComponent(stack.taskApi, 'postgresql'), generation: 'g1' };
    endpoints = new Endpoints(urls());
    planFile = join(testbed.dir, 'swap-crash-plan.json');
    pods = swapPods(urls, CONTROL_TOKEN, (plan) => {
      published = plan;
      writeFileSync(planFile, JSON.stringify(plan));
    });
    await seed(endpoints.serving, model, 1_000);
    expect((await lostOrWrong(jsonClient(urls()[0] as string), model)).problems).toEqual([]);
  }, 180_000);

  afterAll(() => stack.stop());

  /**
   * Drives the swap to `phase`, then kills the replica running the copier
   * (its job, and anything else it held in memory, gone) during that phase's
   * step, keeps stepping while it is gone (for `goneMs` at least, a step a
   * second), starts a replacement from the published plan, and checks it
   * serves reads at once and holds writes until the driver has pushed it the
   * plan. Returns the state, and a line saying what happened.
   */
  async function crashDuring(
    start: SwapState,
    phase: SwapPhase,
    journal: string[],
    goneMs: number,
  ): Promise<{ state: SwapState; line: string }> {
    let state = await drive(pods, start, journal, (s) => s.phase === phase);
    expect(state.phase).toBe(phase);
    const victimUrl = jobPod(urls());
    const victim = stack.replicas.findIndex((replica) => replica.url === victimUrl);
    const survivorUrl = urls().find((url) => url !== victimUrl) as string;
    // Taken out of the load first: requests in flight to a killed process have no known outcome.
    await endpoints.takeOut(victimUrl);
    const stepping = step(pods, state, journal);
    let seen = '';
    await waitUntil(
      async () => {
        if (phase === 'Flip') {
          const { plan } = await pods.report(survivorUrl);
          seen = `survivor fenced ${plan.fenced}, truth ${plan.truth.component}`;
          return plan.fenced || sameStore(plan.truth, state.to);
        }
        const { job } = await pods.report(victimUrl);
        seen = `${job?.kind ?? 'no'} job ${job?.state ?? ''}, ${job?.walked ?? 0} walked`;
        return job?.kind === phase.toLowerCase() && (job.walked > 0 || job.state !== 'running');
      },
      { what: `the ${phase} step to start`, timeoutMs: 20_000, intervalMs: 5 },
    );
    stack.replicas[victim]?.process.kill('SIGKILL');
    const killedAt = performance.now();
    state = await stepping;
    const downSteps: Step[] = [{ phase: state.phase, blocked: state.blocked }];
    // The operator steps again before the replacement is there.
    while (performance.now() - killedAt < goneMs) {
      await sleep(1_000);
      state = await step(pods, state, journal);
      downSteps.push({ phase: state.phase, blocked: state.blocked });
    }

    const inForce = (await pods.report(survivorUrl)).plan;
    expect(published).toEqual(inForce);
    await stack.restartReplica(victim, { [SERVICE_ENV.swapPlanFile]: planFile });
    const readyAt = performance.now();
    const replacement = jsonClient(victimUrl);
    // Reads are served at once; a write waits for the driver.
    const read = await replacement.request('GET', '/tasks?limit=5');
    let settledAt: number | undefined;
    const settled = (): void => {
      settledAt = performance.now();
    };
    const write = replacement.request<Task>('POST', '/tasks', { title: `written to the replacement in ${phase}` });
    write.then(settled, settled);
    await sleep(500);
    const heldBeforePush = settledAt === undefined;
    const pushedAt = performance.now();
    state = await step(pods, state, journal);
    const written = await write;
    if (written.status === 201) {
      const etag = (await replacement.request('GET', `/tasks/${written.body.id}`)).headers.get('etag') ?? '';
      model.tasks.set(written.body.id, { task: written.body, etag });
    }
    endpoints.putBack(victimUrl);
    const line =
      `${phase}: killed at ${seen}; while down ${downSteps.map(describeStep).join(' > ')}; replacement ready ` +
      `${Math.round(readyAt - killedAt)} ms after the kill from revision ${inForce.revision}` +
      `${inForce.fenced ? ' (fenced)' : ''}; read ${read.status}; write held ${heldBeforePush}, answered ` +
      `${written.status} ${Math.round((settledAt ?? pushedAt) - pushedAt)} ms after the driver's step began`;
    expect(read.status).toBe(200);
    expect(heldBeforePush).toBe(true);
    expect(written.status).toBe(201);
    for (const down of downSteps) {
      expect(down.phase).toBe(phase);
      expect(down.blocked).toContain(`pod ${victimUrl} unreachable`);
    }
    return { state, line };
  }

  /**
   * Drives `state` to Completed under load, crashing a replica in each of
   * `phases`; then nothing may be lost, and no request may have failed but
   * those `refusedAsKnown` matches.
   */
  async function swapWithCrashes(
    state: SwapState,
    phases: SwapPhase[],
    goneMs: number,
    refusedAsKnown?: RegExp,
  ): Promise<StoreRef> {
    const writesBefore = endpoints.writes.length;
    const load = startLoad(endpoints, model);
    const journal: string[] = [];
    const lines: string[] = [];
    try {
      for (const phase of phases) {
        const crashed = await crashDuring(state, phase, journal, goneMs);
        state = crashed.state;
        lines.push(crashed.line);
      }
      state = await drive(pods, state, journal);
    } finally {
      await load.stop();
    }
    const slowest = Math.max(...endpoints.writes.slice(writesBefore).map((write) => write.ms));
    console.log(
      `${lines.join('\n')}\nsteps: ${journal.join(' > ')}\n` +
        `longest fence ${state.longestFenceMs} ms (slowest write seen by the client ${Math.round(slowest)} ms), ` +
        `flip retries ${state.flipRetries}, ${requestsLine(model)}`,
    );
    expect(state.phase).toBe('Completed');
    await expectNothingLost(stack, pods, model, state.to);
    expect(model.failures.filter((failure) => !refusedAsKnown?.test(failure))).toEqual([]);
    // Where the tasks are now: a process gone while mirroring made the copy start again in a fresh generation.
    return state.to;
  }

  /** Where the tasks are after the first test: PostgreSQL, in the generation its last copy built. */
  let onPostgresql: StoreRef | undefined;

  it('replaces one killed in the backfill and one in the verify, holds their writes until the driver has told them the plan, and loses nothing', async () => {
    onPostgresql = await swapWithCrashes(startSwap(redis, postgresql, 0), ['Backfill', 'Verify'], 1_000);
  }, 300_000);

  it('replaces one killed during the flip and gone longer than the fence lasts, and loses nothing', async () => {
    // A flip step that cannot reach a pod lifts the fence on those it reaches at once: no write waits it out.
    await swapWithCrashes(
      startSwap(onPostgresql ?? postgresql, { ...redis, generation: 'g2' }, 0),
      ['Flip'],
      SETTINGS.fenceTimeoutMs + 1_000,
    );
  }, 300_000);
});
