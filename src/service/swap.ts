/**
 * A swap of state stores as one task pod lives it (docs/swap.md). The
 * operator sets the plan (src/api/contract.ts: SwapPlan); this module holds
 * it, routes every request by it, and runs the copier when asked.
 *
 * - Reads go to the plan's truth store. A write goes to the truth first, then,
 *   while the plan has a mirror, to the mirror (version-guarded, a tombstone
 *   for a delete) before it is acknowledged. A mirror write that fails is kept
 *   as debt and redone in the background; the pod reports it, and the
 *   operator does not flip while any is left.
 * - A fenced plan holds new writes and is acknowledged once the writes in
 *   flight have finished; a held write goes on under the next plan, or gets
 *   503 (Retry-After) when the fence outlasts its timeout.
 * - A pod that starts from a plan with a swap under way (the mounted file)
 *   holds writes until the operator has told it the current plan itself:
 *   the file may lag behind.
 */
import { randomUUID } from 'node:crypto';
import type { DaprClient } from '@dapr/dapr';
import type { StoreRef, SwapJobKind, SwapJobStatus, SwapPlan, SwapReport } from '../api/contract.ts';
import { DaprTaskStore, type AdoptOutcome, type StateItem, type VersionedTask } from './dapr/task-store.ts';
import { ServiceError } from './errors.ts';
import type { StoredTask, TaskStore } from './ports.ts';
import type { ListQuery, Task, TaskPage } from './schemas/task.ts';
import { FIRST_GENERATION, taskKey, type Position, type StoredValue } from './task-index.ts';

export const DEFAULT_FENCE_TIMEOUT_MS = 10_000;
/** Index pages the copier takes at a time (128 tasks each): a few hundred documents a bulk request, as a bulk copy would. */
const COPY_PAGES = 4;
/** How often debt (mirror writes that failed) is tried again. */
const DEBT_RETRY_MS = 500;

export function steadyPlan(component: string, generation = FIRST_GENERATION): SwapPlan {
  return {
    revision: 0,
    truth: { component, generation },
    mirror: null,
    fenced: false,
    fenceTimeoutMs: DEFAULT_FENCE_TIMEOUT_MS,
  };
}

/** Whether a plan has a swap under way (a pod starting in one waits for the operator before writing). */
export const swapUnderWay = (plan: SwapPlan): boolean => plan.mirror !== null || plan.fenced;

const refKey = (ref: StoreRef): string => `${ref.component}/${ref.generation}`;

/** What a job's copies found, by outcome: logged when it ends (how much a backfill really copied). */
type Outcomes = Partial<Record<AdoptOutcome, number>>;

/** A write the mirror has not taken yet: the version to mirror, or the deleted version to bury. */
type Debt = { kind: 'put'; task: VersionedTask } | { kind: 'bury'; id: string; version: number };

interface Logger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/** Where the copier stands in a truth chain: the next position, and entries whose document was not there yet. */
interface CopyCursor {
  pair: string;
  position: Position;
  missing: Position[];
}

export class SwapStore implements TaskStore {
  private readonly client: DaprClient;
  private readonly logger: Logger;
  private current: SwapPlan;
  private readonly stores = new Map<string, DaprTaskStore>();
  private inflight = 0;
  private drained: (() => void)[] = [];
  /** Resolved (and replaced) whenever the plan changes: what held writes wait on. */
  private changed = Promise.withResolvers<undefined>();
  private waitingForOperator: boolean;
  private readonly debt = new Map<string, Debt>();
  private job: SwapJobStatus | null = null;
  private cursor: CopyCursor | undefined;
  private readonly debtTimer: NodeJS.Timeout;
  /** This process: the driver tells a pod that restarted (and lost what it owed the mirror) from one that did not. */
  private readonly instance = randomUUID();

  constructor(client: DaprClient, initial: SwapPlan, logger: Logger) {
    this.client = client;
    this.current = initial;
    this.logger = logger;
    this.waitingForOperator = swapUnderWay(initial);
    this.debtTimer = setInterval(() => void this.repay(), DEBT_RETRY_MS);
    this.debtTimer.unref();
  }

  get plan(): SwapPlan {
    return this.current;
  }

  stop(): void {
    clearInterval(this.debtTimer);
  }

  private store(ref: StoreRef): DaprTaskStore {
    const key = refKey(ref);
    let store = this.stores.get(key);
    if (!store) {
      store = new DaprTaskStore(this.client, ref.component, ref.generation);
      this.stores.set(key, store);
    }
    return store;
  }

  /**
   * Takes `plan` if it is newer than the one running (or the same one again:
   * the operator repeats itself until every pod has answered). Resolves once
   * it is in force: for a fence, once the writes in flight have finished.
   * `fromOperator`: told by the operator itself, not read from the file.
   */
  async apply(plan: SwapPlan, fromOperator: boolean): Promise<'applied' | 'stale'> {
    if (plan.revision < this.current.revision) return 'stale';
    if (fromOperator) this.waitingForOperator = false;
    if (plan.revision > this.current.revision) {
      const before = this.current;
      this.current = plan;
      if (!plan.mirror || refKey(plan.mirror) !== (before.mirror && refKey(before.mirror))) this.debt.clear();
      this.logger.info(
        { revision: plan.revision, truth: plan.truth, mirror: plan.mirror, fenced: plan.fenced },
        'swap plan applied',
      );
    }
    const changed = this.changed;
    this.changed = Promise.withResolvers<undefined>();
    changed.resolve(undefined);
    if (this.current.fenced && this.inflight > 0) {
      await new Promise<void>((resolve) => this.drained.push(resolve));
    }
    return 'applied';
  }

  /** Whether the store behind `component` answers: one read through it (throws store_unavailable when not). */
  async probe(component: string): Promise<void> {
    await this.store({ component, generation: FIRST_GENERATION }).read(['swap|probe']);
  }

  report(loaded: string[]): SwapReport {
    return {
      instance: this.instance,
      plan: this.current,
      inflight: this.inflight,
      debt: this.debt.size,
      loaded,
      job: this.job,
    };
  }

  // Reads: the source of truth.

  get(id: string): Promise<StoredTask | undefined> {
    return this.store(this.current.truth).get(id);
  }

  list(query: ListQuery): Promise<TaskPage> {
    return this.store(this.current.truth).list(query);
  }

  // Marks: in the source of truth alone. A swap does not copy them, so what they record may happen once more after it.

  marked(mark: string): Promise<boolean> {
    return this.store(this.current.truth).marked(mark);
  }

  mark(mark: string): Promise<void> {
    return this.store(this.current.truth).mark(mark);
  }

  // Writes: the truth, then the mirror.

  async create(task: Task): Promise<void> {
    await this.write(async (truth, mirror) => {
      await truth.create(task);
      if (mirror) await this.mirrorOrOwe(mirror, { kind: 'put', task: { task, version: 1 } });
    });
  }

  async replace(task: Task, etag: string): Promise<number> {
    return this.write(async (truth, mirror) => {
      const version = await truth.replace(task, etag);
      if (mirror) await this.mirrorOrOwe(mirror, { kind: 'put', task: { task, version } });
      return version;
    });
  }

  async delete(id: string): Promise<Task | undefined> {
    return this.write(async (truth, mirror) => {
      const removed = await truth.remove(id);
      if (removed && mirror) await this.mirrorOrOwe(mirror, { kind: 'bury', id, version: removed.version });
      return removed?.task;
    });
  }

  /** Admits a write under the plan in force (waiting out a fence), and counts it while in flight. */
  private async write<T>(run: (truth: DaprTaskStore, mirror: DaprTaskStore | undefined) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.current.fenceTimeoutMs;
    while (this.current.fenced || this.waitingForOperator) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new ServiceError(
          'swap_fenced',
          this.current.fenced
            ? 'the task store is being switched; writes wait for it, and this one waited too long: try again'
            : 'this pod started during a switch of task stores and is waiting to be told where writes go: try again',
        );
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.changed.promise, new Promise((resolve) => (timer = setTimeout(resolve, left)))]);
      clearTimeout(timer);
    }
    // Counted in the same step as the check: a fence applied from here on waits for this write.
    this.inflight++;
    const plan = this.current;
    try {
      return await run(this.store(plan.truth), plan.mirror ? this.store(plan.mirror) : undefined);
    } finally {
      this.inflight--;
      if (this.inflight === 0) for (const resolve of this.drained.splice(0)) resolve();
    }
  }

  private async mirrorOrOwe(mirror: DaprTaskStore, debt: Debt): Promise<void> {
    try {
      await this.mirrorOne(mirror, debt);
    } catch (error) {
      const id = debt.kind === 'put' ? debt.task.task.id : debt.id;
      // Newest wins: a later write of the same task replaces an older debt.
      this.debt.set(id, debt);
      this.logger.warn(
        { taskId: id, mirror: mirror.storeName, reason: error instanceof Error ? error.message : String(error) },
        'mirror write failed; kept to redo',
      );
    }
  }

  private mirrorOne(mirror: DaprTaskStore, debt: Debt): Promise<void> {
    return debt.kind === 'put' ? mirror.mirror(debt.task) : mirror.bury(debt.id, debt.version);
  }

  private repaying = false;

  private async repay(): Promise<void> {
    const ref = this.current.mirror;
    if (this.repaying || !ref || this.debt.size === 0) return;
    this.repaying = true;
    try {
      const mirror = this.store(ref);
      for (const [id, debt] of [...this.debt]) {
        await this.mirrorOne(mirror, debt);
        if (this.debt.get(id) === debt) this.debt.delete(id);
      }
      this.logger.info({ mirror: ref.component }, 'mirror debt repaid');
    } catch {
      // Still failing: the next round tries again.
    } finally {
      this.repaying = false;
    }
  }

  // The copier.

  /** Starts a copier job under plan `revision`, unless one of that kind and revision is already there. */
  startJob(kind: SwapJobKind, revision: number, id: string): SwapJobStatus {
    const plan = this.current;
    if (revision !== plan.revision || !plan.mirror) {
      throw new ServiceError(
        'stale_plan',
        `job ${kind} is for plan revision ${revision}; this pod runs revision ${plan.revision}${plan.mirror ? '' : ' without a mirror'}`,
      );
    }
    if (this.job?.id === id && this.job.state !== 'failed') return this.job;
    if (this.job?.state === 'running') {
      throw new ServiceError('stale_plan', `job ${this.job.kind} of revision ${this.job.revision} is still running`);
    }
    const status: SwapJobStatus = {
      id,
      kind,
      revision,
      state: 'running',
      walked: 0,
      total: 0,
      copied: 0,
      mismatches: 0,
      error: undefined,
    };
    this.job = status;
    const outcomes: Outcomes = {};
    const truth = this.store(plan.truth);
    const mirror = this.store(plan.mirror);
    void this.runJob(status, outcomes, truth, mirror).then(
      () => {
        status.state = 'done';
        this.logger.info({ ...status, outcomes }, 'swap job done');
      },
      (error: unknown) => {
        status.state = 'failed';
        status.error = error instanceof Error ? error.message : String(error);
        this.logger.warn({ ...status, outcomes }, 'swap job failed');
      },
    );
    return status;
  }

  private async runJob(
    status: SwapJobStatus,
    outcomes: Outcomes,
    truth: DaprTaskStore,
    mirror: DaprTaskStore,
  ): Promise<void> {
    const pair = `${refKey({ component: truth.storeName, generation: truth.generation })}>${refKey({ component: mirror.storeName, generation: mirror.generation })}`;
    status.total = await truth.approximateCount('all');
    const resume = status.kind === 'catch-up' && this.cursor?.pair === pair ? this.cursor : undefined;
    const cursor: CopyCursor = { pair, position: resume?.position ?? { page: 0, slot: 0 }, missing: [] };
    // Entries whose documents were missing last time: a create in flight then, or one that failed half-way.
    for (const position of resume?.missing ?? []) {
      const { entries, missing } = await truth.entriesAt('all', position);
      const first = entries[0];
      if (first && first.position.slot === position.slot) {
        const write = await this.copy(status, outcomes, mirror, [first], true);
        await write();
      }
      if (missing[0]?.slot === position.slot) cursor.missing.push(position);
    }
    // COPY_PAGES pages at a time; the next ones, and what the mirror holds for them, are read while these are copied.
    const ahead = async (position: Position) => {
      const batch = await truth.entriesAt('all', position, COPY_PAGES);
      const there = await mirror.read(batch.entries.map(({ task }) => taskKey(task.id)));
      return { ...batch, there };
    };
    let reading = ahead(cursor.position);
    // The documents of one batch are written while the next one is indexed.
    let writing: Promise<void> = Promise.resolve();
    for (;;) {
      const { entries, missing, next, end, there } = await reading;
      if (!end) {
        reading = ahead(next);
        // Awaited next turn; if the copy below fails first, this read's failure must not go unhandled.
        reading.catch(() => undefined);
      }
      status.walked += entries.length + missing.length;
      const write = await this.copy(status, outcomes, mirror, entries, status.kind !== 'backfill', there);
      await writing;
      writing = write();
      writing.catch(() => undefined);
      cursor.missing.push(...missing);
      cursor.position = next;
      if (end) break;
    }
    await writing;
    status.total = Math.max(status.total, status.walked);
    this.cursor = cursor;
  }

  /** Backfill: adopt every task. Verify and catch-up: compare first, adopt only what differs. */
  private async copy(
    status: SwapJobStatus,
    outcomes: Outcomes,
    mirror: DaprTaskStore,
    tasks: VersionedTask[],
    compare: boolean,
    read?: StateItem[],
  ): Promise<() => Promise<void>> {
    const nothing = () => Promise.resolve();
    if (tasks.length === 0) return nothing;
    let todo = tasks;
    let todoRead = read;
    if (compare) {
      const there = read
        ? read.map((item) => mirror.stored(item))
        : await mirror.documents(tasks.map(({ task }) => task.id));
      const keep = tasks.map((incoming, index) => needsCopy(incoming, there[index]));
      todo = tasks.filter((_, index) => keep[index]);
      todoRead = read?.filter((_, index) => keep[index]);
      status.mismatches += todo.length;
    }
    if (todo.length === 0) return nothing;
    const write = await mirror.adoptIndexed(todo, 1, todoRead);
    return async () => {
      for (const outcome of await write()) outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      status.copied = (outcomes.copied ?? 0) + (outcomes.indexed ?? 0);
    };
  }
}

/**
 * Whether verify or catch-up must adopt `incoming` (the truth's task as the
 * copier read it) into the mirror, which holds `there`. A copy without its
 * entries is adopted whatever its version: a write mirrored between the
 * copier's read of the truth and its read of the mirror leaves the mirror a
 * version ahead but unlisted, and skipping it as newer left it out of every
 * listing after the flip (one task in a thousand, now and then, in the swap
 * tests). Adoption keeps the newer version and gives it its entries.
 */
export function needsCopy(incoming: VersionedTask, there: StoredValue | undefined): boolean {
  if (there?.kind === 'buried' || there?.kind === 'superseded') return false;
  if (there?.kind !== 'live') return true;
  const { document } = there;
  if (!document.listed) return true;
  if (document.version !== incoming.version) return document.version < incoming.version;
  return JSON.stringify(canonical(document.task)) !== JSON.stringify(canonical(incoming.task));
}

/** A task with its keys in one order, so two stores' copies compare equal whatever order each keeps them in. */
function canonical(task: Task): [string, unknown][] {
  return Object.entries(task).sort(([a], [b]) => (a < b ? -1 : 1));
}
