/**
 * TaskStore on a Dapr state store: task documents and the index chains of
 * task-index.ts, through Dapr's state API alone.
 *
 * A create writes its entries and its document in one state transaction,
 * group-committed: while one commit is in flight, the creates (and other
 * appends) that arrive meanwhile wait and go in the next together, so
 * concurrent creates cost one bulk read and one transaction per batch, not
 * each (IndexWriter below says how a Redis transaction that does not roll
 * back is made safe). Other changes go entry first, document second, and
 * entries are cleared after the document moved on (task-index.ts), so they
 * need no transaction over several keys.
 */
import { isDeepStrictEqual } from 'node:util';
import { StateConcurrencyEnum, StateConsistencyEnum, type DaprClient } from '@dapr/dapr';
import type { OperationType } from '@dapr/dapr/types/Operation.type.js';
import { isServiceError, ServiceError } from '../errors.ts';
import { KeyedQueue } from '../keyed-queue.ts';
import type { StoredTask, TaskStore } from '../ports.ts';
import { taskSchema, type ListQuery, type Task, type TaskPage, type TaskStatus } from '../schemas/task.ts';
import {
  appendIds,
  asPage,
  clearSlot,
  decodeCursor,
  documentValue,
  encodeCursor,
  entriesFrom,
  entryCounts,
  FIRST_GENERATION,
  isFull,
  LIST_MAX_PAGES,
  PAGE_SIZE,
  pageKey,
  statusChain,
  storedValue,
  tailKey,
  taskKey,
  tombstoneValue,
  type Chain,
  type Generation,
  type IndexPage,
  type Position,
  type StoredValue,
  type TaskDocument,
} from '../task-index.ts';
import { callDapr } from './client.ts';

/** A key to write, under `etag`, or insert-only without one. */
type Write = { key: string; value: unknown; etag: string | undefined };

export interface StateItem {
  key: string;
  value: unknown;
  /** Absent when the key does not exist. */
  etag: string | undefined;
}

/** How often a page write re-reads the page after losing a race for it before giving up with a 503. */
const PAGE_ATTEMPTS = 8;
/**
 * How long a group commit goes on retrying while other replicas keep winning
 * its pages, PAGE_ATTEMPTS tries at least, before answering 503. Two replicas
 * creating without pause on one store lose about one race in three, again and
 * again (each commit's read and write span most of the other's cycle), so a
 * count of tries alone failed creates on a loaded machine (the swap test in CI).
 */
const COMMIT_PATIENCE_MS = 3_000;
/** Bulk reads of a key its single read finds (created meanwhile, or a failed bulk read) before giving up. */
const CONFIRM_ATTEMPTS = 3;
const FIRST_WRITE = {
  concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE,
  // The store's default: Redis' "strong" would add a WAIT for replicas on every write.
  consistency: StateConsistencyEnum.CONSISTENCY_UNSPECIFIED,
};

/**
 * Writes of several keys in one request, in one order of keys for every
 * writer. PostgreSQL locks each row as its statement runs, so two replicas
 * changing the same two index pages in opposite orders deadlock, and
 * PostgreSQL aborts one with 40P01 (seen as 503s on creates in the swap test).
 */
const inKeyOrder = <T extends { key: string }>(writes: T[]): T[] =>
  [...writes].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

/**
 * The SDK types a transaction's ETag as `{ value }`, but daprd's HTTP API takes
 * a plain string (an object is refused): this is the one place that bridges them.
 */
function etagField(etag: string): Pick<OperationType['request'], 'etag'> {
  return { etag: etag as unknown as OperationType['request']['etag'] };
}

/** A task and its version, as one store holds it and another receives it in a swap. */
export interface VersionedTask {
  task: Task;
  version: number;
}

/** What the copier found for one task, counted in its progress. */
/** `superseded`: a later swap's copy is there (src/service/task-index.ts: StoredValue); left alone. */
export type AdoptOutcome = 'copied' | 'indexed' | 'present' | 'buried' | 'superseded';

export class DaprTaskStore implements TaskStore {
  private readonly client: DaprClient;
  readonly storeName: string;
  /** The layout this store is read and written in (task-index.ts). */
  readonly generation: Generation;
  /** One write at a time per page in this process: it never races itself for a page's ETag. */
  private readonly pageWrites = new KeyedQueue();
  private readonly index = new IndexWriter(this);

  constructor(client: DaprClient, storeName: string, generation: Generation = FIRST_GENERATION) {
    this.client = client;
    this.storeName = storeName;
    this.generation = generation;
  }

  pageKey(chain: Chain, page: number): string {
    return pageKey(chain, page, this.generation);
  }

  tailKey(chain: Chain): string {
    return tailKey(chain, this.generation);
  }

  /** A document key's value as this generation sees it, the task parsed. */
  stored(item: StateItem | undefined): StoredValue {
    if (item?.etag === undefined) return { kind: 'absent' };
    const value = storedValue(item.value, this.generation);
    if (value.kind !== 'live') return value;
    return { kind: 'live', document: { ...value.document, task: taskSchema.parse(value.document.task) } };
  }

  private live(item: StateItem | undefined): TaskDocument | undefined {
    const value = this.stored(item);
    return value.kind === 'live' ? value.document : undefined;
  }

  /**
   * Reads keys with their ETags (the SDK's `get` drops the ETag; `getBulk` keeps
   * it), in the order asked for: daprd answers a bulk get in completion order.
   */
  async read(keys: string[]): Promise<StateItem[]> {
    if (keys.length === 0) return [];
    for (let attempt = 1; ; attempt++) {
      const items = await this.readOnce(keys);
      const absent = items.find((item) => item.etag === undefined)?.key;
      // A key created between the two reads is there on the second try; a failed bulk read is not.
      if (!(await this.presentAlone(absent))) return items;
      if (attempt >= CONFIRM_ATTEMPTS) {
        throw new ServiceError(
          'store_unavailable',
          `state get: the store keeps answering ${String(absent)} absent in a bulk read, but it is there`,
        );
      }
    }
  }

  private async readOnce(keys: string[]): Promise<StateItem[]> {
    const items = await callDapr('state get', () =>
      this.client.state.getBulk(this.storeName, keys, { parallelism: keys.length }),
    );
    const byKey = new Map<string, StateItem>();
    for (const item of items) {
      // daprd answers 200 even when the store is down, with an error per key.
      if (typeof item.error === 'string') {
        // The store's own words (and the key) go to the log, as for every other store failure, not to the client.
        throw new ServiceError('store_unavailable', `state get: ${String(item.key)}: ${item.error}`, {
          cause: new Error(item.error),
        });
      }
      const key = String(item.key);
      byKey.set(key, { key, value: item.data as unknown, etag: typeof item.etag === 'string' ? item.etag : undefined });
    }
    return keys.map((key) => byKey.get(key) ?? { key, value: undefined, etag: undefined });
  }

  /**
   * Dapr's PostgreSQL store (components-contrib 1.18, state/postgresql v1)
   * answers a bulk get whose query failed while its rows were read (a pooled
   * connection to a PostgreSQL that restarted) with every key absent and no
   * error, never checking the rows' error: right after a restart a listing
   * showed 0 of 79 tasks four times, once per dead connection. A single get
   * reports that failure. So the first key a bulk read calls absent is asked
   * again on its own: whether it is there after all.
   */
  private async presentAlone(key: string | undefined): Promise<boolean> {
    if (key === undefined) return false;
    const value: unknown = await callDapr('state get', () => this.client.state.get(this.storeName, key));
    return value !== '' && value !== undefined && value !== null;
  }

  /** Saves `value` at `key` if it still has `etag`, or only if it does not exist yet (no etag). */
  async marked(mark: string): Promise<boolean> {
    const [item] = await this.read([`mark|${mark}`]);
    return item?.etag !== undefined;
  }

  async mark(mark: string): Promise<void> {
    try {
      await this.write(`mark|${mark}`, { marked_at: new Date().toISOString() }, undefined);
    } catch (error) {
      // Insert-only: a mark already there refuses the write (as 409, or as a failure on some stores).
      if (!(await this.marked(mark))) throw error;
    }
  }

  async write(key: string, value: unknown, etag: string | undefined): Promise<void> {
    await callDapr('state save', () =>
      this.client.state.save(this.storeName, [
        { key, value, ...(etag === undefined ? {} : { etag }), options: FIRST_WRITE },
      ]),
    );
  }

  /**
   * Changes a page with `change` under its ETag, one write at a time per page in
   * this process; a lost race (another replica) re-reads and tries again.
   * `change` returns the page it was given when there is nothing to write.
   */
  changePage<T>(
    chain: Chain,
    page: number,
    change: (current: IndexPage) => { page: IndexPage; result: T },
  ): Promise<T> {
    const key = this.pageKey(chain, page);
    return this.pageWrites.run(key, async () => {
      for (let attempt = 1; attempt <= PAGE_ATTEMPTS; attempt++) {
        const [item] = await this.read([key]);
        const current = asPage(item?.value);
        const { page: next, result } = change(current);
        if (next === current) return result;
        try {
          await this.write(key, next, item?.etag);
          return result;
        } catch (error) {
          // A lost race shows as 409, or as a generic failure on some stores: a changed page tells.
          if (!isServiceError(error, 'store_unavailable') && !isServiceError(error, 'etag_mismatch')) throw error;
          const [now] = await this.read([key]);
          if (now?.etag === item?.etag) throw error;
          await backoff(attempt);
        }
      }
      throw new ServiceError(
        'index_contention',
        `index page ${key} kept changing; gave up after ${PAGE_ATTEMPTS} tries`,
      );
    });
  }

  /**
   * Saves several keys in one bulk save, each under its ETag (or insert-only
   * without one). Not atomic: a failure may leave some written; callers re-read.
   */
  async writeMany(writes: { key: string; value: unknown; etag: string | undefined }[]): Promise<void> {
    await callDapr('state save', () =>
      this.client.state.save(
        this.storeName,
        inKeyOrder(writes).map(({ key, value, etag }) => ({
          key,
          value,
          ...(etag === undefined ? {} : { etag }),
          options: FIRST_WRITE,
        })),
      ),
    );
  }

  /**
   * Writes `pages`, each under its ETag (or insert-only without one), and
   * `together` (new documents, insert-only on PostgreSQL) in the same
   * transaction as the pages that exist. A page that does not exist yet gets a
   * save of its own first: Dapr's Redis store keeps a key insert-only only if
   * a plain save created it (a transaction does not mark it first-write), so a
   * page a transaction created would be taken over by the next insert-only
   * save: two replicas starting the same new index page would both win, the
   * later erasing the earlier's entries. The rest go in one save for one key,
   * one state transaction for more.
   * A failure may leave some written on Redis (its transactions do not roll
   * back): callers re-read.
   */
  async writeAll(pages: Write[], together: Write[] = []): Promise<void> {
    const created = await Promise.allSettled(
      pages.filter(({ etag }) => etag === undefined).map(({ key, value }) => this.write(key, value, undefined)),
    );
    const failed = created.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
    const changes = [...pages.filter(({ etag }) => etag !== undefined), ...together];
    const [only] = changes;
    if (changes.length === 0) return;
    if (changes.length === 1 && only) {
      await this.write(only.key, only.value, only.etag);
      return;
    }
    const operations: OperationType[] = inKeyOrder(changes).map(({ key, value, etag }) => ({
      operation: 'upsert',
      request: { key, value, ...(etag === undefined ? {} : etagField(etag)), options: FIRST_WRITE },
    }));
    await callDapr('state transaction', () => this.client.state.transaction(this.storeName, operations));
  }

  /** Deletes `key` if it still has `etag`. */
  async deleteAt(key: string, etag: string): Promise<void> {
    await callDapr('state delete', () =>
      this.client.state.delete(this.storeName, key, { etag, concurrency: FIRST_WRITE.concurrency }),
    );
  }

  /** One key read: the ETag clients see is the document's version, so the store's is not needed here. */
  async get(id: string): Promise<StoredTask | undefined> {
    const value = await callDapr('state get', () => this.client.state.get(this.storeName, taskKey(id)));
    const stored = storedValue(value, this.generation);
    if (stored.kind !== 'live') return undefined;
    return { task: taskSchema.parse(stored.document.task), etag: String(stored.document.version) };
  }

  documentOf(task: Task, version: number, listed: Position | null, byStatus: Position | null): object {
    return documentValue({ task, version, listed, byStatus, generation: this.generation });
  }

  async create(task: Task): Promise<void> {
    await this.index.create({ task, value: (listed, byStatus) => this.documentOf(task, 1, listed, byStatus) });
  }

  /**
   * A conditional change whose refusal may be its own echo: Dapr's Redis
   * client sends a command again when the connection drops before the answer
   * (a restart of Redis), and the second copy of a change that had landed
   * fails its own ETag or insert-only check. Seen in the fault table: a status
   * change answered 409 although the store held exactly that change, and a
   * DELETE answered 409 although the task was gone. So a refused change counts
   * as done when `landed` finds it in the store.
   */
  private async changeOrFindLanded(change: () => Promise<void>, landed: () => Promise<boolean>): Promise<void> {
    try {
      await change();
    } catch (error) {
      if (!isServiceError(error, 'etag_mismatch') && !isServiceError(error, 'store_unavailable')) throw error;
      if (!(await landed().catch(() => false))) throw error;
    }
  }

  /** Writes `value` under `etag`; refused, it landed if the key holds exactly `value`. */
  private async writeOrFindWritten(key: string, value: object, etag: string | undefined): Promise<void> {
    await this.changeOrFindLanded(
      () => this.write(key, value, etag),
      async () => {
        const [now] = await this.readOnce([key]);
        // Deep, not textual: PostgreSQL's jsonb gives the keys back in an order of its own.
        return isDeepStrictEqual(now?.value, value);
      },
    );
  }

  /**
   * Deletes `key` under `etag`; refused, it landed if no live document is left
   * (read through `read`, which does not take PostgreSQL's failed bulk read for absence).
   */
  private async deleteOrFindDeleted(key: string, etag: string): Promise<void> {
    await this.changeOrFindLanded(
      () => this.deleteAt(key, etag),
      async () => {
        const [now] = await this.read([key]);
        return this.live(now) === undefined;
      },
    );
  }

  /** Replaces the task if it is at version `etag`; returns the new version. */
  async replace(task: Task, etag: string): Promise<number> {
    const [item] = await this.read([taskKey(task.id)]);
    const current = this.live(item);
    if (!current || String(current.version) !== etag || item?.etag === undefined) {
      throw new ServiceError('etag_mismatch', `task ${task.id} changed since it was read`);
    }
    const version = current.version + 1;
    const moves = current.task.status !== task.status;
    const byStatus =
      moves && current.listed ? await this.index.append(statusChain(task.status), task.id) : current.byStatus;
    await this.writeOrFindWritten(
      taskKey(task.id),
      this.documentOf(task, version, current.listed, byStatus),
      item.etag,
    );
    await this.clearLeftStatus(current, task);
    return version;
  }

  async delete(id: string): Promise<Task | undefined> {
    return (await this.remove(id))?.task;
  }

  /** Deletes the task; returns what was deleted, with its version. */
  async remove(id: string): Promise<VersionedTask | undefined> {
    const [item] = await this.read([taskKey(id)]);
    const current = this.live(item);
    if (!current || item?.etag === undefined) return undefined;
    await this.deleteOrFindDeleted(taskKey(id), item.etag);
    await this.clearEntries(current);
    return { task: current.task, version: current.version };
  }

  /** Clears the status entry `before` had, once the task has moved to another status (`after`). */
  private async clearLeftStatus(before: TaskDocument | undefined, after: Task): Promise<void> {
    if (!before?.byStatus || before.task.status === after.status) return;
    await this.clearEntry(statusChain(before.task.status), before.byStatus, after.id);
  }

  private async clearEntries(document: TaskDocument): Promise<void> {
    const { listed, byStatus, task } = document;
    await Promise.all([
      listed && this.clearEntry('all', listed, task.id),
      byStatus && this.clearEntry(statusChain(task.status), byStatus, task.id),
    ]);
  }

  /**
   * A write made in the store that is the source of truth, mirrored here
   * during a swap: applied only over an older version (mirrors of one task
   * may arrive out of order), never over a tombstone. The entries are the
   * copier's to make (in creation order); once it has made them, a change of
   * status moves the status entry here too.
   */
  async mirror(incoming: VersionedTask): Promise<void> {
    const key = taskKey(incoming.task.id);
    await this.retryingRace(async () => {
      const [item] = await this.read([key]);
      const stored = this.stored(item);
      if (stored.kind === 'buried' || stored.kind === 'superseded') return;
      const current = stored.kind === 'live' ? stored.document : undefined;
      if (current && current.version >= incoming.version) return;
      const listed = current?.listed ?? null;
      const moves = current?.byStatus && current.task.status !== incoming.task.status;
      const byStatus = moves
        ? await this.index.append(statusChain(incoming.task.status), incoming.task.id)
        : (current?.byStatus ?? null);
      await this.write(key, this.documentOf(incoming.task, incoming.version, listed, byStatus), item?.etag);
      await this.clearLeftStatus(current, incoming.task);
    });
  }

  /** A delete mirrored here: a tombstone newer than every write of the task, so no copy brings it back. */
  async bury(id: string, deletedVersion: number): Promise<void> {
    const key = taskKey(id);
    await this.retryingRace(async () => {
      const [item] = await this.read([key]);
      const stored = this.stored(item);
      if (stored.kind === 'buried' || stored.kind === 'superseded') return;
      await this.write(key, tombstoneValue(deletedVersion + 1, this.generation), item?.etag);
      if (stored.kind === 'live') await this.clearEntries(stored.document);
    });
  }

  /**
   * The copier's step for one page of the source's `all` chain: each task
   * read there is made present and indexed here, in the order given (so this
   * store's `all` chain keeps creation order). A newer version already here
   * (a mirrored write) is kept, a tombstone is never copied over.
   */
  async adopt(tasks: VersionedTask[], attempt = 1, read?: StateItem[]): Promise<AdoptOutcome[]> {
    const write = await this.adoptIndexed(tasks, attempt, read);
    return write();
  }

  /**
   * adopt in two halves: resolves once every task's entries exist here, with
   * the function that writes their documents, so the copier can index the
   * next batch while this one's documents are written (entries still come
   * before documents, task by task).
   */
  async adoptIndexed(tasks: VersionedTask[], attempt = 1, read?: StateItem[]): Promise<() => Promise<AdoptOutcome[]>> {
    // `read`: the documents as read a moment ago (the copier reads ahead); a write they are stale for races and retries.
    const items = read ?? (await this.read(tasks.map(({ task }) => taskKey(task.id))));
    type Plan =
      | { outcome: AdoptOutcome }
      | { item: StateItem | undefined; current: TaskDocument | undefined; newest: VersionedTask };
    const plans = tasks.map((incoming, index): Plan => {
      const item = items[index];
      const stored = this.stored(item);
      if (stored.kind === 'buried' || stored.kind === 'superseded') return { outcome: stored.kind };
      const current = stored.kind === 'live' ? stored.document : undefined;
      const newest = current && current.version >= incoming.version ? current : incoming;
      if (current?.listed && newest === current) return { outcome: 'present' };
      return { item, current, newest };
    });
    // Appends asked for in page order, in one tick: one group commit, in that order.
    const appends = plans.map((plan) =>
      'newest' in plan && !plan.current?.listed
        ? Promise.all([
            this.index.append('all', plan.newest.task.id),
            this.index.append(statusChain(plan.newest.task.status), plan.newest.task.id),
          ])
        : Promise.resolve(undefined),
    );
    const positioned = await Promise.all(appends);
    const writes = plans.flatMap((plan, index) => {
      if (!('newest' in plan)) return [];
      const { item, current, newest } = plan;
      const [listed, byStatus] = positioned[index] ?? [current?.listed ?? null, current?.byStatus ?? null];
      return [
        {
          key: taskKey(newest.task.id),
          value: this.documentOf(newest.task, newest.version, listed, byStatus),
          etag: item?.etag,
        },
      ];
    });
    return async () => {
      // The common case, nothing there yet: one bulk save. On any failure, one at a time, each racing on its own.
      if (attempt === 1 && writes.length > 1) {
        try {
          await this.writeMany(writes);
          await Promise.all(
            plans.map((plan) =>
              'newest' in plan &&
              plan.current?.listed &&
              plan.current.byStatus &&
              plan.current.task.status !== plan.newest.task.status
                ? this.clearEntry(statusChain(plan.current.task.status), plan.current.byStatus, plan.newest.task.id)
                : Promise.resolve(),
            ),
          );
          return plans.map((plan) => ('newest' in plan ? (plan.current ? 'indexed' : 'copied') : plan.outcome));
        } catch (error) {
          if (!isServiceError(error)) throw error;
        }
      }
      return Promise.all(
        plans.map(async (plan, index): Promise<AdoptOutcome> => {
          if (!('newest' in plan)) return plan.outcome;
          const positions = positioned[index];
          const { item, current, newest } = plan;
          const [listed, byStatus] = positions ?? [current?.listed ?? null, current?.byStatus ?? null];
          try {
            await this.write(
              taskKey(newest.task.id),
              this.documentOf(newest.task, newest.version, listed, byStatus),
              item?.etag,
            );
            await this.clearLeftStatus(current, newest.task);
            return current ? 'indexed' : 'copied';
          } catch (error) {
            const retry = isServiceError(error, 'etag_mismatch') || isServiceError(error, 'store_unavailable');
            if (!retry) throw error;
            // A mirrored write got there first: again for this one task, keeping the entries made (creation order).
            return this.adoptOne(
              tasks[index] as VersionedTask,
              positions && { listed: positions[0], byStatus: positions[1], status: newest.task.status },
            );
          }
        }),
      );
    };
  }

  /**
   * adopt for one task after losing a race for its document: re-read it and
   * write it again, with the entries already appended for it when it still
   * has none (so it keeps its place in creation order).
   */
  private async adoptOne(
    incoming: VersionedTask,
    appended: { listed: Position; byStatus: Position; status: TaskStatus } | undefined,
  ): Promise<AdoptOutcome> {
    const key = taskKey(incoming.task.id);
    for (let attempt = 1; ; attempt++) {
      await backoff(attempt);
      const [item] = await this.read([key]);
      const stored = this.stored(item);
      if (stored.kind === 'buried' || stored.kind === 'superseded') return stored.kind;
      const current = stored.kind === 'live' ? stored.document : undefined;
      const newest = current && current.version >= incoming.version ? current : incoming;
      if (current?.listed && newest === current) return 'present';
      let listed = current?.listed ?? appended?.listed ?? null;
      let byStatus = current?.listed ? current.byStatus : (appended?.byStatus ?? null);
      if (!listed) {
        [listed, byStatus] = await Promise.all([
          this.index.append('all', incoming.task.id),
          this.index.append(statusChain(newest.task.status), incoming.task.id),
        ]);
      } else if (!current?.listed && appended && newest.task.status !== appended.status) {
        // It changed status since the entries were made: its status entry goes where it is now.
        byStatus = await this.index.append(statusChain(newest.task.status), incoming.task.id);
      }
      try {
        await this.write(key, this.documentOf(newest.task, newest.version, listed, byStatus), item?.etag);
        return current ? 'indexed' : 'copied';
      } catch (error) {
        const retry = isServiceError(error, 'etag_mismatch') || isServiceError(error, 'store_unavailable');
        if (!retry || attempt >= PAGE_ATTEMPTS) throw error;
      }
    }
  }

  /** Runs `attempt` (which reads what it changes) again while it loses races or the store hiccups, a few times. */
  private async retryingRace(attempt: () => Promise<void>): Promise<void> {
    for (let tries = 1; ; tries++) {
      try {
        await attempt();
        return;
      } catch (error) {
        if (!isServiceError(error, 'store_unavailable') && !isServiceError(error, 'etag_mismatch')) throw error;
        if (tries >= PAGE_ATTEMPTS) throw error;
        await backoff(tries);
      }
    }
  }

  /** Clears an entry its document left. Best effort: an entry no document points at does not count anyway. */
  private async clearEntry(chain: Chain, position: Position, id: string): Promise<void> {
    try {
      await this.changePage(chain, position.page, (page) => ({
        page: clearSlot(page, position.slot, id),
        result: undefined,
      }));
    } catch {
      // Left for the next list to skip.
    }
  }

  async list(query: ListQuery): Promise<TaskPage> {
    const chain: Chain = query.status === undefined ? 'all' : statusChain(query.status);
    let position: Position = query.cursor === undefined ? { page: 0, slot: 0 } : await this.resume(query.cursor, chain);
    const items: Task[] = [];
    for (let pages = 0; pages < LIST_MAX_PAGES && items.length < query.limit; pages++) {
      const { entries, next, end } = await this.entriesAt(chain, position);
      let consumed = next;
      for (const entry of entries) {
        items.push(entry.task);
        if (items.length === query.limit) {
          consumed = afterPosition(entry.position);
          break;
        }
      }
      position = consumed;
      // The chain's last page, read to its end: nothing more until new tasks come.
      if (end && items.length < query.limit) return { items, next_cursor: null };
    }
    const after = items.at(-1)?.id;
    return { items, next_cursor: encodeCursor({ chain, ...position, generation: this.generation, after }) };
  }

  /**
   * Where a cursor goes on from. One made in another generation (before a swap
   * of stores) goes on after the last task it returned, found by its document.
   */
  private async resume(text: string, chain: Chain): Promise<Position> {
    const cursor = decodeCursor(text);
    if (cursor === undefined) {
      throw new ServiceError('validation_failed', 'cursor: not a next_cursor this service hands out', {
        field: 'cursor',
      });
    }
    if (cursor.chain !== chain) {
      throw new ServiceError(
        'cursor_mismatch',
        'cursor: made by a listing with another ?status=; pass the same ?status= or list from the start',
        { field: 'cursor' },
      );
    }
    if (cursor.generation === this.generation) return cursor;
    const [item] = cursor.after === undefined ? [] : await this.read([taskKey(cursor.after)]);
    const document = this.live(item);
    const own = document && (chain === 'all' ? document.listed : document.byStatus);
    if (!document || !own || !entryCounts(document, chain, own)) {
      throw new ServiceError(
        'cursor_mismatch',
        'cursor: the tasks moved to another store since this cursor was made, and its last task is gone; list from the start',
        { field: 'cursor' },
      );
    }
    return afterPosition(own);
  }

  /**
   * The live entries of `pages` pages of `chain` from `position` on (their
   * pages read in one bulk get, their documents in another), each with its
   * task and version; `missing`: entries whose document is not there (a create
   * still in flight, or one that failed half-way); `end`: the chain's last
   * page was among them, read to its end.
   */
  async entriesAt(
    chain: Chain,
    position: Position,
    pages = 1,
  ): Promise<{
    entries: (VersionedTask & { position: Position })[];
    missing: Position[];
    next: Position;
    end: boolean;
  }> {
    const numbers = Array.from({ length: pages }, (_, index) => position.page + index);
    const items = await this.read(numbers.map((page) => this.pageKey(chain, page)));
    const found: { id: string; position: Position }[] = [];
    let next = position;
    let end = false;
    for (const [index, item] of items.entries()) {
      const page = asPage(item.value);
      const from = entriesFrom(page, numbers[index] ?? 0, index === 0 ? position.slot : 0);
      found.push(...from.entries);
      next = from.next;
      if (!isFull(page)) {
        end = true;
        break;
      }
    }
    const documents = await this.read(found.map((entry) => taskKey(entry.id)));
    const entries: (VersionedTask & { position: Position })[] = [];
    const missing: Position[] = [];
    for (const [index, entry] of found.entries()) {
      const document = this.live(documents[index]);
      if (document && entryCounts(document, chain, entry.position)) {
        entries.push({ task: document.task, version: document.version, position: entry.position });
      } else if (this.stored(documents[index]).kind === 'absent') {
        missing.push(entry.position);
      }
    }
    return { entries, missing, next, end };
  }

  /** About how many entries (live or cleared) `chain` holds: its full pages, by the tail hint, and the last one. */
  async approximateCount(chain: Chain): Promise<number> {
    const [hint] = await this.read([this.tailKey(chain)]);
    const tail = (hint?.value as { page?: unknown } | undefined)?.page;
    const page = typeof tail === 'number' ? tail : 0;
    const [last] = await this.read([this.pageKey(chain, page)]);
    return page * PAGE_SIZE + asPage(last?.value).slots.length;
  }

  /** The documents of `ids` as this generation sees them, in that order. */
  async documents(ids: string[]): Promise<StoredValue[]> {
    const items = await this.read(ids.map(taskKey));
    return items.map((item) => this.stored(item));
  }
}

/** The position after `position`. */
const afterPosition = (position: Position): Position => ({ page: position.page, slot: position.slot + 1 });

/** A task's new document, written in the transaction that places its entries in chains `all` and its status's. */
interface NewDocument {
  task: Task;
  /** The task id's entry in `all`, then in its status's chain, once placed. */
  value: (listed: Position, byStatus: Position) => object;
}

/** Ids waiting to join chains, and the new document that goes with them (a create). */
interface PendingJob {
  appends: { chain: Chain; id: string }[];
  document: NewDocument | undefined;
  resolve: (positions: Position[]) => void;
  reject: (error: unknown) => void;
}

/**
 * Appends ids to the last pages of their chains, group-committed: the jobs
 * that wait while one commit is in flight go together in the next, which reads
 * every page it needs in one bulk get and writes every page it changed, and
 * the documents of the creates among them, in one state transaction, each page
 * under its ETag.
 *
 * On PostgreSQL the transaction is all or nothing. Dapr's Redis store runs it
 * as MULTI/EXEC, which applies the rest when a page's ETag check fails: the
 * documents are then written, pointing at a place the page does not hold, so
 * they count in no listing of that chain (task-index.ts: an entry counts only
 * while its document points back). The retry reads those documents and writes
 * them again under their ETags with the places it found; one a client changed
 * meanwhile (it found the task through the other chain) keeps the change. If
 * the retries give up, such documents are deleted again. A create that never
 * answered can so leave its document behind only when its process dies in the
 * few milliseconds between a lost race and the retry: a task no client was
 * told of, listed in at most one chain.
 */
class IndexWriter {
  private readonly store: DaprTaskStore;
  private waiting: PendingJob[] = [];
  private draining = false;
  /** Per chain, the page appends go to, as last seen; read from the tail hint on first use. */
  private readonly tails = new Map<Chain, number>();

  constructor(store: DaprTaskStore) {
    this.store = store;
  }

  async append(chain: Chain, id: string): Promise<Position> {
    const [position] = await this.enqueue([{ chain, id }], undefined);
    return position as Position;
  }

  /** Indexes a new task in `all` and its status's chain and writes its document, in one transaction. */
  async create(document: NewDocument): Promise<void> {
    const { id, status } = document.task;
    await this.enqueue(
      [
        { chain: 'all', id },
        { chain: statusChain(status), id },
      ],
      document,
    );
  }

  private enqueue(appends: PendingJob['appends'], document: NewDocument | undefined): Promise<Position[]> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ appends, document, resolve, reject });
      if (!this.draining) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.draining = true;
    while (this.waiting.length > 0) {
      const batch = this.waiting;
      this.waiting = [];
      try {
        const positions = await this.commit(batch);
        for (const job of batch) {
          job.resolve(job.appends.map(({ chain, id }) => positions.get(`${chain} ${id}`) as Position));
        }
      } catch (error) {
        for (const job of batch) job.reject(error);
      }
    }
    this.draining = false;
  }

  /** Places every id of `batch` on its chain's last page (the next ones as pages fill), with the new documents. */
  private async commit(batch: PendingJob[]): Promise<Map<string, Position>> {
    const positions = new Map<string, Position>();
    let todo = new Map<Chain, string[]>();
    for (const { appends } of batch) {
      for (const { chain, id } of appends) todo.set(chain, [...(todo.get(chain) ?? []), id]);
    }
    const unwritten = new Set(batch.flatMap((job) => (job.document ? [job] : [])));
    // A transaction with documents failed: on Redis some may be written (see above), so they are read first.
    let documentsMayExist = false;
    for (const chain of todo.keys()) if (!this.tails.has(chain)) this.tails.set(chain, await this.tailHint(chain));
    let since = Date.now();
    try {
      for (let attempt = 1; todo.size > 0 || unwritten.size > 0; attempt++) {
        const chains = [...todo.keys()];
        const keys = chains.map((chain) => this.store.pageKey(chain, this.tails.get(chain) ?? 0));
        const documentKeys = documentsMayExist ? [...unwritten].map((job) => taskKey(job.appends[0]?.id ?? '')) : [];
        const read = await this.store.read([...keys, ...documentKeys]);
        const writes: Write[] = [];
        const placed = new Map<string, Position>();
        const next = new Map<Chain, string[]>();
        for (const [index, chain] of chains.entries()) {
          const item = read[index];
          const current = asPage(item?.value);
          const appended = appendIds(current, todo.get(chain) ?? []);
          if ([...appended.slots.values()].some((slot) => slot >= current.slots.length)) {
            writes.push({ key: keys[index] ?? '', value: appended.page, etag: item?.etag });
          }
          const page = this.tails.get(chain) ?? 0;
          for (const [id, slot] of appended.slots) placed.set(`${chain} ${id}`, { page, slot });
          if (appended.rest.length > 0) next.set(chain, appended.rest);
        }
        const placedAt = (chain: Chain, id: string) => placed.get(`${chain} ${id}`) ?? positions.get(`${chain} ${id}`);
        const ready: { job: PendingJob; write: Write | undefined }[] = [];
        for (const [index, job] of [...unwritten].entries()) {
          const [all, byStatus] = job.appends.map(({ chain, id }) => placedAt(chain, id));
          if (!all || !byStatus) continue;
          const stored = documentsMayExist ? read[keys.length + index] : undefined;
          ready.push({ job, write: this.documentWrite(job.document as NewDocument, all, byStatus, stored) });
        }
        try {
          await this.store.writeAll(
            writes,
            ready.flatMap(({ write }) => (write ? [write] : [])),
          );
        } catch (error) {
          // A lost race shows as 409, or as a generic failure on some stores: a changed page tells.
          if (!isServiceError(error, 'store_unavailable') && !isServiceError(error, 'etag_mismatch')) throw error;
          if (ready.length > 0) documentsMayExist = true;
          const now = await this.store.read(writes.map((write) => write.key));
          if (now.every((item, index) => item.etag === writes[index]?.etag)) throw error;
          // Other writers won the pages, so the store is making progress: this commit keeps trying for a while.
          const waited = Date.now() - since;
          if (attempt >= PAGE_ATTEMPTS && waited >= COMMIT_PATIENCE_MS) {
            throw new ServiceError(
              'index_contention',
              `index pages kept changing; gave up after ${attempt} tries in ${waited} ms`,
            );
          }
          await backoff(Math.min(attempt, 4));
          continue;
        }
        for (const [key, position] of placed) positions.set(key, position);
        for (const { job } of ready) unwritten.delete(job);
        for (const chain of next.keys()) {
          const page = (this.tails.get(chain) ?? 0) + 1;
          this.tails.set(chain, page);
          // Only a hint (it never fails; see moveHint): not on the way of the appends that wait.
          void this.moveHint(chain, page);
        }
        todo = next;
        attempt = 0;
        since = Date.now();
      }
    } catch (error) {
      if (documentsMayExist) await this.forget([...unwritten]);
      throw error;
    }
    return positions;
  }

  /**
   * The write of a create's document once its entries are placed. `stored`:
   * what its key holds after a transaction that failed, when that may have
   * written it (Redis); undefined on the first try, when it cannot exist.
   */
  private documentWrite(
    document: NewDocument,
    listed: Position,
    byStatus: Position,
    stored: StateItem | undefined,
  ): Write | undefined {
    const key = taskKey(document.task.id);
    const value = document.value(listed, byStatus);
    if (stored?.etag === undefined) return { key, value, etag: undefined };
    const found = this.store.stored(stored);
    // Deleted by a client that found it through the chain its entry did reach: it stays deleted.
    if (found.kind !== 'live') return undefined;
    const current = found.document;
    // Still the version this create wrote: the places found now. A client's change (version 2 on) is kept,
    // with the places found now for the chains it is still in.
    const rebased =
      current.version === 1
        ? value
        : this.store.documentOf(
            current.task,
            current.version,
            listed,
            current.task.status === document.task.status ? byStatus : current.byStatus,
          );
    return isDeepStrictEqual(stored.value, rebased) ? undefined : { key, value: rebased, etag: stored.etag };
  }

  /** The documents of creates that gave up after a transaction that may have written them: deleted, best effort. */
  private async forget(jobs: PendingJob[]): Promise<void> {
    if (jobs.length === 0) return;
    try {
      const items = await this.store.read(jobs.map((job) => taskKey(job.document?.task.id ?? '')));
      await Promise.all(
        items.map((item) => {
          const found = this.store.stored(item);
          if (found.kind !== 'live' || found.document.version !== 1 || item.etag === undefined) {
            return Promise.resolve();
          }
          return this.store.deleteAt(item.key, item.etag);
        }),
      );
    } catch {
      // The store is away: what is left counts in one chain at most, and only for a create that answered 503.
    }
  }

  /** Where a chain's appends went last, by any replica (0 for a new chain). */
  private async tailHint(chain: Chain): Promise<number> {
    const [hint] = await this.store.read([this.store.tailKey(chain)]);
    const page = (hint?.value as { page?: unknown } | undefined)?.page;
    return typeof page === 'number' ? page : 0;
  }

  /**
   * Moves a chain's hint forward. Best effort, and only a hint: a replica
   * starting from a stale one reads a few full pages more, nothing worse.
   */
  private async moveHint(chain: Chain, page: number): Promise<void> {
    try {
      const [hint] = await this.store.read([this.store.tailKey(chain)]);
      const known = (hint?.value as { page?: unknown } | undefined)?.page;
      if (typeof known === 'number' && known >= page) return;
      await this.store.write(this.store.tailKey(chain), { page }, hint?.etag);
    } catch {
      // Another replica moved it first, or the store hiccuped: the pages still tell.
    }
  }
}

/** Jittered, growing pause between retries, so racing writers spread out. */
function backoff(attempt: number): Promise<void> {
  const ms = Math.random() * 5 * 2 ** Math.min(attempt, 6);
  return new Promise((resolve) => setTimeout(resolve, ms));
}
