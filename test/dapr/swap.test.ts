/**
 * Swapping a TaskApi's state store without losing a task, on real daprd with
 * the test bed's Redis and PostgreSQL: two service replicas, each with its
 * own daprd loading both stores' Components, driven through the phases by
 * the operator's own swap driver (src/controller/swap.ts) while a client
 * keeps creating, changing, deleting and reading tasks on both replicas.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StoreRef } from '../../src/api/contract.ts';
import {
  DEFAULT_SWAP_SETTINGS,
  reverseSwap,
  startSwap,
  stepSwap,
  type SwapPhase,
  type SwapState,
} from '../../src/controller/swap.ts';
import { names } from '../../src/controller/names.ts';
import { jsonClient, type JsonClient } from '../support/http.ts';
import {
  driveSwap,
  emptyModel,
  lostOrWrong,
  relativeOrder,
  runLoad,
  seed,
  swapPods,
  type LoadModel,
} from '../support/swap-load.ts';
import { startTaskServiceStack, type TaskServiceStack } from '../support/task-service-stack.ts';

const testbed = inject('testbed');
const CONTROL_TOKEN = 'swap-test-control-token-0123456789';
const SETTINGS = { ...DEFAULT_SWAP_SETTINGS, fenceTimeoutMs: 5_000, stepTimeoutMs: 20_000 };

/** Steps the swap until `until` (default: Completed), as the operator would, one step per pass. */
async function drive(
  stack: TaskServiceStack,
  state: SwapState,
  until?: (state: SwapState) => boolean,
): Promise<{ state: SwapState; phases: SwapPhase[] }> {
  const pods = swapPods(() => stack.replicas.map((replica) => replica.url), CONTROL_TOKEN);
  const result = await driveSwap(pods, SETTINGS, state, until);
  return { state: result.state, phases: result.phases.map(({ phase }) => phase) };
}

describe('a swap of state stores under load', () => {
  let stack: TaskServiceStack;
  let apis: JsonClient[];
  let redis: StoreRef;
  let postgresql: StoreRef;
  // One client's view for the whole file: the second test goes on from the store the first left the tasks in.
  const model: LoadModel = emptyModel();

  beforeAll(async () => {
    stack = await startTaskServiceStack(testbed, {
      name: 'swap',
      backend: 'redis',
      stores: testbed,
      swap: { controlToken: CONTROL_TOKEN, replicas: 2 },
    });
    apis = stack.replicas.map((replica) => jsonClient(replica.url));
    redis = { component: names.stateComponent(stack.taskApi, 'redis'), generation: '0' };
    postgresql = { component: names.stateComponent(stack.taskApi, 'postgresql'), generation: 'g1' };
  }, 120_000);

  afterAll(() => stack.stop());

  /** The later tests go on from where the first left the tasks: said plainly when it did not get there. */
  async function expectTruth(store: StoreRef): Promise<void> {
    for (const replica of stack.replicas) {
      const { plan } = await swapPods(() => [], CONTROL_TOKEN).report(replica.url);
      expect(plan.truth, `${replica.url} holds the tasks where the earlier test left them`).toEqual(store);
    }
  }

  it('moves 1,000 tasks from Redis to PostgreSQL and back while clients write, losing nothing', async () => {
    await seed(apis, model, 1_000);
    const before = await lostOrWrong(apis[0] as JsonClient, model);
    expect(before.problems).toEqual([]);
    const seeded = new Set(before.order);

    for (const [from, to] of [
      [redis, postgresql],
      [postgresql, { ...redis, generation: 'g2' }],
    ] as const) {
      const { promise: stopLoad, resolve: endLoad } = Promise.withResolvers<undefined>();
      const load = runLoad(apis, model, 6, stopLoad);
      const started = performance.now();
      const result = await drive(stack, startSwap(from, to, 0));
      endLoad(undefined);
      await load;
      console.log(
        `swap ${from.component} -> ${to.component}: ${Math.round(performance.now() - started)} ms, ` +
          `phases ${result.phases.join(' > ')}, longest fence ${result.state.longestFenceMs} ms, ` +
          `flip retries ${result.state.flipRetries}, ${model.requests} requests so far, ${model.failures.length} failed`,
      );
      expect(result.state.phase).toBe('Completed');
      expect(result.phases).toEqual(['TargetAdded', 'DualWrite', 'Backfill', 'Verify', 'Flip', 'Finish', 'Completed']);
      expect(model.failures).toEqual([]);
      expect(model.wrongReads).toEqual([]);
      for (const replica of stack.replicas) {
        const report = await swapPods(() => [], CONTROL_TOKEN).report(replica.url);
        expect(report.plan.truth).toEqual(to);
        expect(report.plan.mirror).toBeNull();
      }
      for (const api of apis) {
        const after = await lostOrWrong(api, model);
        expect(after.problems).toEqual([]);
        const kept = new Set([...seeded].filter((id) => model.tasks.has(id)));
        expect(relativeOrder(after.order, kept)).toEqual(relativeOrder(before.order, kept));
      }
    }
    expect(model.deleted.size).toBeGreaterThan(0);
  }, 600_000);

  it('goes back to the old store, losing nothing, when the swap is undone during backfill or verify', async () => {
    const current: StoreRef = { ...redis, generation: 'g2' };
    await expectTruth(current);
    await seed(apis, model, 300);
    for (const [generation, undoIn] of [
      ['g3', 'Backfill'],
      ['g4', 'Verify'],
    ] as const) {
      const { promise: stopLoad, resolve: endLoad } = Promise.withResolvers<undefined>();
      const load = runLoad(apis, model, 4, stopLoad);
      const forward = await drive(
        stack,
        startSwap(current, { ...postgresql, generation }, 0),
        (s) => s.phase === undoIn,
      );
      expect(forward.state.phase).toBe(undoIn);
      const back = reverseSwap(forward.state);
      expect(back).toBeDefined();
      const result = await drive(stack, back as SwapState);
      endLoad(undefined);
      await load;
      expect(result.state.phase).toBe('Completed');
      expect(model.failures).toEqual([]);
      expect(model.wrongReads).toEqual([]);
      for (const replica of stack.replicas) {
        const report = await swapPods(() => [], CONTROL_TOKEN).report(replica.url);
        expect(report.plan.truth).toEqual(current);
        expect(report.plan.mirror).toBeNull();
      }
      expect((await lostOrWrong(apis[1] as JsonClient, model)).problems).toEqual([]);
    }
  }, 300_000);

  it('goes on from what status recorded when the operator is killed in any phase, its last step never recorded', async () => {
    const current: StoreRef = { ...redis, generation: 'g2' };
    await expectTruth(current);
    const pods = swapPods(() => stack.replicas.map((replica) => replica.url), CONTROL_TOKEN);
    const { promise: stopLoad, resolve: endLoad } = Promise.withResolvers<undefined>();
    const load = runLoad(apis, model, 4, stopLoad);
    // In each phase, one step runs to its end (pods told, jobs started, fences raised) but its outcome is
    // dropped, as when the operator is SIGKILLed before it writes status; the next operator starts from status.
    let recorded = startSwap(current, { ...postgresql, generation: 'g5' }, 0);
    const killedIn: SwapPhase[] = [];
    for (let step = 0; step < 400 && recorded.phase !== 'Completed'; step++) {
      if (!killedIn.includes(recorded.phase)) {
        killedIn.push(recorded.phase);
        await stepSwap(recorded, pods, SETTINGS);
      }
      recorded = await stepSwap(recorded, pods, SETTINGS);
    }
    endLoad(undefined);
    await load;
    expect(recorded.phase).toBe('Completed');
    expect(killedIn).toEqual(['TargetAdded', 'DualWrite', 'Backfill', 'Verify', 'Flip', 'Finish']);
    expect(model.failures).toEqual([]);
    expect(model.wrongReads).toEqual([]);
    for (const api of apis) expect((await lostOrWrong(api, model)).problems).toEqual([]);
  }, 300_000);
});
