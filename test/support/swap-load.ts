/**
 * For swap tests: the pods of a stack as the operator's swap driver reaches
 * them (over HTTP, with the control token), and a client load that keeps a
 * model of every acknowledged write, so a test can check afterwards that
 * nothing acknowledged was lost and that every read answered what the model
 * says.
 */
import {
  SWAP_JOB_ROUTE,
  SWAP_PROBE_ROUTE,
  SWAP_ROUTE,
  type SwapJobStatus,
  type SwapPlan,
  type SwapReport,
} from '../../src/api/contract.ts';
import {
  stepSwap,
  type SwapPhase,
  type SwapPods,
  type SwapSettings,
  type SwapState,
} from '../../src/controller/swap.ts';
import type { Task, TaskStatus } from '../../src/service/schemas/task.ts';
import { jsonClient, type JsonClient } from './http.ts';
import { allTasks } from './task-service-stack.ts';

/** `publish`: where a plan goes before pods hear of it (a file a restarted replica starts from). */
export function swapPods(
  urls: () => string[],
  token: string,
  publish: (plan: SwapPlan) => void = () => undefined,
): SwapPods {
  const call = async <T>(url: string, method: string, path: string, body?: unknown): Promise<T> => {
    // A pod that does not answer is named, as the operator's own SwapPods does.
    const response = await jsonClient(url, token)
      .request<T>(method, path, body)
      .catch((error: unknown) => {
        throw new Error(`pod ${url} unreachable: ${error instanceof Error ? error.message : String(error)}`);
      });
    if (response.status >= 400 && !(method === 'PUT' && response.status === 409)) {
      throw new Error(`${method} ${url}${path} answered ${response.status}: ${JSON.stringify(response.body)}`);
    }
    return response.body;
  };
  return {
    list: () => Promise.resolve(urls()),
    publish: (plan) => {
      publish(plan);
      return Promise.resolve();
    },
    report: (pod) => call<SwapReport>(pod, 'GET', SWAP_ROUTE),
    push: (pod, plan) => call<SwapReport>(pod, 'PUT', SWAP_ROUTE, plan),
    startJob: (pod, job) => call<SwapJobStatus>(pod, 'POST', SWAP_JOB_ROUTE, job),
    probe: (pod, component) =>
      call(pod, 'POST', SWAP_PROBE_ROUTE, { component }).then(
        () => undefined,
        (error: unknown) => (error instanceof Error ? error.message : String(error)),
      ),
  };
}

/** What the client was told: the last acknowledged content and ETag of each task, and what it deleted. */
export interface LoadModel {
  tasks: Map<string, { task: Task; etag: string }>;
  deleted: Set<string>;
  /**
   * Tasks whose last write got no answer, or a 5xx: it may or may not have
   * landed, so the task holds its last acknowledged content or the attempted
   * change (and, for a delete, may be gone). The client leaves them alone.
   */
  unsure: Map<string, { last: Task; attempted: TaskStatus | 'deleted' }>;
  /** Titles of creates without an answer: such a task may exist. */
  unsureCreates: Set<string>;
  /** Requests answered with anything but what the API promises for them. */
  failures: string[];
  /** Reads whose answer differed from the model. */
  wrongReads: string[];
  requests: number;
}

export function emptyModel(): LoadModel {
  return {
    tasks: new Map(),
    deleted: new Set(),
    unsure: new Map(),
    unsureCreates: new Set(),
    failures: [],
    wrongReads: [],
    requests: 0,
  };
}

/** A request that may get no answer at all (a crash on the way): status 0, and the error as its body. */
function send(api: JsonClient): JsonClient {
  return {
    request: async (...request) => {
      try {
        return await api.request(...request);
      } catch (error) {
        const cause =
          error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : '';
        return { status: 0, headers: new Headers(), body: `no answer: ${cause}` as never };
      }
    },
  };
}

/** No answer or a server error: the write may have landed. A 4xx says it did not. */
const outcomeUnknown = (status: number): boolean => status === 0 || status >= 500;

const STATUSES: TaskStatus[] = ['pending', 'in_progress', 'completed'];

/** Creates `count` tasks, `parallel` at a time, spread over the replicas; records them in the model. */
export async function seed(apis: JsonClient[], model: LoadModel, count: number, parallel = 8): Promise<void> {
  let made = 0;
  await Promise.all(
    Array.from({ length: parallel }, async (_, worker) => {
      while (made < count) {
        made++;
        await create(apis[worker % apis.length] as JsonClient, model, `seed ${made}`);
      }
    }),
  );
}

async function create(api: JsonClient, model: LoadModel, title: string): Promise<string | undefined> {
  model.requests++;
  const response = await send(api).request<Task>('POST', '/tasks', { title, priority: 1 + (title.length % 5) });
  if (response.status !== 201) {
    model.failures.push(`POST /tasks: ${response.status} ${JSON.stringify(response.body)}`);
    if (outcomeUnknown(response.status)) model.unsureCreates.add(title);
    return undefined;
  }
  model.tasks.set(response.body.id, { task: response.body, etag: response.headers.get('etag') ?? '(none)' });
  return response.body.id;
}

let loadRuns = 0;

/**
 * Until `stop` resolves: `workers` clients, each on tasks of its own (so the
 * model knows exactly what a read must answer), creating, changing status
 * with If-Match, deleting and reading, spread over the replicas.
 */
export function runLoad(apis: JsonClient[], model: LoadModel, workers: number, stop: Promise<void>): Promise<void> {
  let stopped = false;
  void stop.then(() => (stopped = true));
  // Titles unique across runs: a create without an answer is recognised by its title.
  const run = ++loadRuns;
  const owned: string[][] = Array.from({ length: workers }, () => []);
  [...model.tasks.keys()].forEach((id, index) => owned[index % workers]?.push(id));
  return Promise.all(
    owned.map(async (mine, worker) => {
      for (let step = 0; !stopped; step++) {
        const api = apis[(worker + step) % apis.length] as JsonClient;
        const pick = mine[(step * 7919) % Math.max(1, mine.length)];
        const roll = step % 10;
        if (roll < 2 || pick === undefined) {
          const id = await create(api, model, `load ${run}.${worker}.${step}`);
          if (id) mine.push(id);
        } else if (roll < 5) {
          await changeStatus(api, model, pick, STATUSES[step % 3] as TaskStatus);
        } else if (roll === 5) {
          await remove(api, model, pick);
        } else {
          await read(api, model, pick);
        }
        // Deleted, or of unknown state since a write got no answer: left alone from now on.
        if (pick !== undefined && !model.tasks.has(pick)) mine.splice(mine.indexOf(pick), 1);
      }
    }),
  ).then(() => undefined);
}

async function changeStatus(api: JsonClient, model: LoadModel, id: string, status: TaskStatus): Promise<void> {
  const known = model.tasks.get(id);
  if (!known) return;
  model.requests++;
  const response = await send(api).request<Task>('PUT', `/tasks/${id}/status`, { status }, { 'if-match': known.etag });
  if (response.status !== 200) {
    model.failures.push(`PUT /tasks/${id}/status: ${response.status} ${JSON.stringify(response.body)}`);
    if (outcomeUnknown(response.status)) becomeUnsure(model, id, status);
    return;
  }
  model.tasks.set(id, { task: response.body, etag: response.headers.get('etag') ?? '(none)' });
}

async function remove(api: JsonClient, model: LoadModel, id: string): Promise<void> {
  model.requests++;
  const response = await send(api).request('DELETE', `/tasks/${id}`);
  if (response.status !== 204) {
    model.failures.push(`DELETE /tasks/${id}: ${response.status} ${JSON.stringify(response.body)}`);
    if (outcomeUnknown(response.status)) becomeUnsure(model, id, 'deleted');
    return;
  }
  model.tasks.delete(id);
  model.deleted.add(id);
}

async function read(api: JsonClient, model: LoadModel, id: string): Promise<void> {
  const known = model.tasks.get(id);
  if (!known) return;
  model.requests++;
  const response = await send(api).request<Task>('GET', `/tasks/${id}`);
  if (response.status !== 200) {
    model.failures.push(`GET /tasks/${id}: ${response.status} ${JSON.stringify(response.body)}`);
    return;
  }
  if (JSON.stringify(response.body) !== JSON.stringify(known.task) || response.headers.get('etag') !== known.etag) {
    model.wrongReads.push(
      `${id}: read ${response.headers.get('etag')} ${JSON.stringify(response.body)}, acknowledged ${known.etag}`,
    );
  }
}

function becomeUnsure(model: LoadModel, id: string, attempted: TaskStatus | 'deleted'): void {
  const known = model.tasks.get(id);
  if (!known) return;
  model.tasks.delete(id);
  model.unsure.set(id, { last: known.task, attempted });
}

/**
 * What differs between the model and what the service answers now, through
 * `api` (empty when nothing is lost), and the order GET /tasks lists ids in.
 */
export async function lostOrWrong(
  api: JsonClient,
  model: LoadModel,
  /** Tasks that were there before the model began, left out of the comparison. */
  preexisting: ReadonlySet<string> = new Set(),
): Promise<{ problems: string[]; order: string[] }> {
  const problems: string[] = [];
  // A task whose write got no answer is checked below against what it may hold; one whose create got none may be there.
  const listed = (await allTasks(api, 100)).filter(
    (task) =>
      !preexisting.has(task.id) &&
      !model.unsure.has(task.id) &&
      (model.tasks.has(task.id) || !model.unsureCreates.has(task.title)),
  );
  const listedIds = listed.map((task) => task.id);
  const expected = [...model.tasks.keys()].sort();
  if (JSON.stringify([...listedIds].sort()) !== JSON.stringify(expected)) {
    const missing = expected.filter((id) => !listedIds.includes(id));
    const extra = listedIds.filter((id) => !model.tasks.has(id));
    const deleted = extra.filter((id) => model.deleted.has(id)).length;
    problems.push(
      `list: ${missing.length} acknowledged tasks missing, ${extra.length} not expected (${deleted} deleted)` +
        (missing.length > 0 ? `; missing ${missing.slice(0, 5).join(', ')}` : ''),
    );
  }
  for (const task of listed) {
    const known = model.tasks.get(task.id);
    if (known && JSON.stringify(task) !== JSON.stringify(known.task)) problems.push(`list: ${task.id} differs`);
  }
  await eachAtMost(READERS, [...model.tasks], async ([id, known]) => {
    const response = await api.request<Task>('GET', `/tasks/${id}`);
    if (response.status !== 200 || JSON.stringify(response.body) !== JSON.stringify(known.task)) {
      problems.push(`GET ${id}: ${response.status}`);
    } else if (response.headers.get('etag') !== known.etag) {
      problems.push(`GET ${id}: ETag ${response.headers.get('etag')}, acknowledged ${known.etag}`);
    }
  });
  await eachAtMost(READERS, [...model.deleted], async (id) => {
    const response = await api.request('GET', `/tasks/${id}`);
    if (response.status !== 404) problems.push(`deleted ${id} answers ${response.status}`);
  });
  await eachAtMost(READERS, [...model.unsure], async ([id, { last, attempted }]) => {
    const response = await api.request<Task>('GET', `/tasks/${id}`);
    const unchanged = response.status === 200 && JSON.stringify(response.body) === JSON.stringify(last);
    const changed =
      attempted === 'deleted'
        ? response.status === 404
        : response.status === 200 &&
          JSON.stringify({ ...response.body, updated_at: '' }) ===
            JSON.stringify({ ...last, status: attempted, updated_at: '' });
    if (!unchanged && !changed) {
      problems.push(`${id} (its ${attempted} got no answer): ${response.status} ${JSON.stringify(response.body)}`);
    }
  });
  return { problems, order: listedIds };
}

/** Reads in flight at once while checking: as a few clients would, without queueing on two cores. */
const READERS = 4;

/** Runs `work` on every item, at most `limit` at a time. */
async function eachAtMost<T>(limit: number, items: T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

/** `order` restricted to the ids in `among`: what must stay the same across a swap. */
export const relativeOrder = (order: string[], among: Set<string>): string[] => order.filter((id) => among.has(id));

export interface Drive {
  state: SwapState;
  /** Each phase entered, with the time (ms since the start) it was entered. */
  phases: { phase: SwapPhase; at: number }[];
  blocked: string[];
}

/** Steps a swap until `until` (default: Completed), as the operator does, one step per pass. */
export async function driveSwap(
  pods: SwapPods,
  settings: SwapSettings,
  state: SwapState,
  until: (state: SwapState) => boolean = (s) => s.phase === 'Completed',
  maxSteps = 400,
): Promise<Drive> {
  const started = performance.now();
  const phases: Drive['phases'] = [{ phase: state.phase, at: 0 }];
  const blocked: string[] = [];
  let current = state;
  for (let step = 0; step < maxSteps && !until(current); step++) {
    current = await stepSwap(current, pods, settings);
    if (current.blocked) blocked.push(`${current.phase}: ${current.blocked}`);
    if (phases.at(-1)?.phase !== current.phase) phases.push({ phase: current.phase, at: performance.now() - started });
  }
  return { state: current, phases, blocked };
}
