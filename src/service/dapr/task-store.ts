/**
 * TaskStore on a Dapr state store: task documents and the index chains of
 * task-index.ts, through Dapr's state API alone.
 *
 * Writes go entry first, document second (see task-index.ts), so no multi-key
 * transaction is needed: Dapr's Redis store runs one as MULTI/EXEC, where a
 * failed ETag check does not undo the rest, and the design does not rely on
 * it. Appends to a chain are group-committed: while one page write is in
 * flight, the appends that arrive meanwhile wait and go in the next write
 * together, so concurrent creates cost one page write per batch, not each.
 */
import { StateConcurrencyEnum, StateConsistencyEnum, type DaprClient } from '@dapr/dapr';
import type { OperationType } from '@dapr/dapr/types/Operation.type.js';
import { isServiceError, ServiceError } from '../errors.ts';
import { KeyedQueue } from '../keyed-queue.ts';
import type { StoredTask, TaskStore } from '../ports.ts';
import { taskSchema, type ListQuery, type Task, type TaskPage } from '../schemas/task.ts';
import {
  appendIds,
  asPage,
  clearSlot,
  decodeCursor,
  encodeCursor,
  entriesFrom,
  entryCounts,
  isFull,
  LIST_MAX_PAGES,
  pageKey,
  statusChain,
  taskKey,
  type Chain,
  type IndexPage,
  type Position,
  type TaskDocument,
} from '../task-index.ts';
import { callDapr } from './client.ts';

interface StateItem {
  key: string;
  value: unknown;
  /** Absent when the key does not exist. */
  etag: string | undefined;
}

/** How often a page write re-reads the page after losing a race for it before giving up with a 503. */
const PAGE_ATTEMPTS = 8;
const FIRST_WRITE = {
  concurrency: StateConcurrencyEnum.CONCURRENCY_FIRST_WRITE,
  // The store's default: Redis' "strong" would add a WAIT for replicas on every write.
  consistency: StateConsistencyEnum.CONSISTENCY_UNSPECIFIED,
};

/**
 * The SDK types a transaction's ETag as `{ value }`, but daprd's HTTP API takes
 * a plain string (an object is refused): this is the one place that bridges them.
 */
function etagField(etag: string): Pick<OperationType['request'], 'etag'> {
  return { etag: etag as unknown as OperationType['request']['etag'] };
}

/** The key of a chain's tail hint: the page appends last went to (only ever a hint; pages tell). */
const tailKey = (chain: Chain): string => `task-index|${chain}|tail`;

const documentSchemaVersion = (value: unknown): value is TaskDocument =>
  typeof value === 'object' && value !== null && 'task' in value && 'version' in value && 'listed' in value;

export class DaprTaskStore implements TaskStore {
  private readonly client: DaprClient;
  private readonly storeName: string;
  /** One write at a time per page in this process: it never races itself for a page's ETag. */
  private readonly pageWrites = new KeyedQueue();
  private readonly index = new IndexWriter(this);

  constructor(client: DaprClient, storeName: string) {
    this.client = client;
    this.storeName = storeName;
  }

  /**
   * Reads keys with their ETags (the SDK's `get` drops the ETag; `getBulk` keeps
   * it), in the order asked for: daprd answers a bulk get in completion order.
   */
  async read(keys: string[]): Promise<StateItem[]> {
    if (keys.length === 0) return [];
    const items = await callDapr('state get', () =>
      this.client.state.getBulk(this.storeName, keys, { parallelism: keys.length }),
    );
    const byKey = new Map<string, StateItem>();
    for (const item of items) {
      // daprd answers 200 even when the store is down, with an error per key.
      if (typeof item.error === 'string') {
        throw new ServiceError('store_unavailable', `state get ${String(item.key)}: ${item.error}`);
      }
      const key = String(item.key);
      byKey.set(key, { key, value: item.data as unknown, etag: typeof item.etag === 'string' ? item.etag : undefined });
    }
    return keys.map((key) => byKey.get(key) ?? { key, value: undefined, etag: undefined });
  }

  /** Saves `value` at `key` if it still has `etag`, or only if it does not exist yet (no etag). */
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
    const key = pageKey(chain, page);
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
   * Writes several keys, each under its ETag (or insert-only without one): one
   * save for one key, one state transaction for more. A failure may leave some
   * written on Redis (its transactions do not roll back): callers re-read.
   */
  async writeAll(writes: { key: string; value: unknown; etag: string | undefined }[]): Promise<void> {
    const [only] = writes;
    if (writes.length === 0) return;
    if (writes.length === 1 && only) {
      await this.write(only.key, only.value, only.etag);
      return;
    }
    const operations: OperationType[] = writes.map(({ key, value, etag }) => ({
      operation: 'upsert',
      request: { key, value, ...(etag === undefined ? {} : etagField(etag)), options: FIRST_WRITE },
    }));
    await callDapr('state transaction', () => this.client.state.transaction(this.storeName, operations));
  }

  /** One key read: the ETag clients see is the document's version, so the store's is not needed here. */
  async get(id: string): Promise<StoredTask | undefined> {
    const value = await callDapr('state get', () => this.client.state.get(this.storeName, taskKey(id)));
    if (!documentSchemaVersion(value)) return undefined;
    return { task: taskSchema.parse(value.task), etag: String(value.version) };
  }

  async create(task: Task): Promise<void> {
    const [listed, byStatus] = await Promise.all([
      this.index.append('all', task.id),
      this.index.append(statusChain(task.status), task.id),
    ]);
    const document: TaskDocument = { task, version: 1, listed, byStatus };
    // Insert-only: a new id's document cannot exist yet.
    await this.write(taskKey(task.id), document, undefined);
  }

  async replace(task: Task, etag: string): Promise<void> {
    const [item] = await this.read([taskKey(task.id)]);
    const current = item && storedDocument(item);
    if (!current || String(current.version) !== etag || item.etag === undefined) {
      throw new ServiceError('etag_mismatch', `task ${task.id} changed since it was read`);
    }
    const moves = current.task.status !== task.status;
    const byStatus = moves ? await this.index.append(statusChain(task.status), task.id) : current.byStatus;
    await this.write(taskKey(task.id), { ...current, task, version: current.version + 1, byStatus }, item.etag);
    if (moves) await this.clearEntry(statusChain(current.task.status), current.byStatus, task.id);
  }

  async delete(id: string): Promise<Task | undefined> {
    const [item] = await this.read([taskKey(id)]);
    const current = item && storedDocument(item);
    if (!current || item.etag === undefined) return undefined;
    const { etag } = item;
    await callDapr('state delete', () =>
      this.client.state.delete(this.storeName, taskKey(id), { etag, concurrency: FIRST_WRITE.concurrency }),
    );
    await Promise.all([
      this.clearEntry('all', current.listed, id),
      this.clearEntry(statusChain(current.task.status), current.byStatus, id),
    ]);
    return current.task;
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
    let position: Position = { page: 0, slot: 0 };
    if (query.cursor !== undefined) {
      const cursor = decodeCursor(query.cursor);
      if (cursor?.chain !== chain) {
        throw new ServiceError('validation_failed', 'cursor: not a next_cursor of this listing (same ?status=)', {
          field: 'cursor',
        });
      }
      position = cursor;
    }
    const items: Task[] = [];
    for (let pages = 0; pages < LIST_MAX_PAGES && items.length < query.limit; pages++) {
      const [item] = await this.read([pageKey(chain, position.page)]);
      const page = asPage(item?.value);
      const { entries, next } = entriesFrom(page, position.page, position.slot);
      const documents = await this.read(entries.map((entry) => taskKey(entry.id)));
      let consumed = next;
      for (const [index, entry] of entries.entries()) {
        const document = documents[index] && storedDocument(documents[index]);
        if (document && entryCounts(document, chain, entry.position)) items.push(document.task);
        if (items.length === query.limit) {
          consumed = afterPosition(entry.position);
          break;
        }
      }
      position = consumed;
      // The chain's last page, read to its end: nothing more until new tasks come.
      if (!isFull(page) && items.length < query.limit) return { items, next_cursor: null };
    }
    return { items, next_cursor: encodeCursor({ chain, ...position }) };
  }
}

/** The position after `position`. */
const afterPosition = (position: Position): Position => ({ page: position.page, slot: position.slot + 1 });

/** An id waiting to join a chain. */
interface PendingAppend {
  chain: Chain;
  id: string;
  resolve: (position: Position) => void;
  reject: (error: unknown) => void;
}

/**
 * Appends ids to the last pages of their chains, group-committed: the appends
 * that wait while one commit is in flight go together in the next, which reads
 * every page it needs in one bulk get and writes every page it changed in one
 * state transaction, each page under its ETag.
 */
class IndexWriter {
  private readonly store: DaprTaskStore;
  private waiting: PendingAppend[] = [];
  private draining = false;
  /** Per chain, the page appends go to, as last seen; read from the tail hint on first use. */
  private readonly tails = new Map<Chain, number>();

  constructor(store: DaprTaskStore) {
    this.store = store;
  }

  append(chain: Chain, id: string): Promise<Position> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ chain, id, resolve, reject });
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
        for (const entry of batch) entry.resolve(positions.get(`${entry.chain} ${entry.id}`) as Position);
      } catch (error) {
        for (const entry of batch) entry.reject(error);
      }
    }
    this.draining = false;
  }

  /** Places every id of `batch` on its chain's last page (the next ones as pages fill). */
  private async commit(batch: PendingAppend[]): Promise<Map<string, Position>> {
    const positions = new Map<string, Position>();
    let todo = new Map<Chain, string[]>();
    for (const { chain, id } of batch) todo.set(chain, [...(todo.get(chain) ?? []), id]);
    for (const chain of todo.keys()) if (!this.tails.has(chain)) this.tails.set(chain, await this.tailHint(chain));
    for (let attempt = 1; todo.size > 0; attempt++) {
      const chains = [...todo.keys()];
      const keys = chains.map((chain) => pageKey(chain, this.tails.get(chain) ?? 0));
      const pages = await this.store.read(keys);
      const writes: { key: string; value: IndexPage; etag: string | undefined }[] = [];
      const placedNow: [Chain, number, Map<string, number>][] = [];
      const next = new Map<Chain, string[]>();
      for (const [index, chain] of chains.entries()) {
        const item = pages[index];
        const current = asPage(item?.value);
        const appended = appendIds(current, todo.get(chain) ?? []);
        if ([...appended.slots.values()].some((slot) => slot >= current.slots.length)) {
          writes.push({ key: keys[index] ?? '', value: appended.page, etag: item?.etag });
        }
        placedNow.push([chain, this.tails.get(chain) ?? 0, appended.slots]);
        if (appended.rest.length > 0) next.set(chain, appended.rest);
      }
      try {
        await this.store.writeAll(writes);
      } catch (error) {
        // A lost race shows as 409, or as a generic failure on some stores: a changed page tells.
        if (!isServiceError(error, 'store_unavailable') && !isServiceError(error, 'etag_mismatch')) throw error;
        const now = await this.store.read(writes.map((write) => write.key));
        if (now.every((item, index) => item.etag === writes[index]?.etag)) throw error;
        if (attempt >= PAGE_ATTEMPTS) {
          throw new ServiceError('index_contention', `index pages kept changing; gave up after ${PAGE_ATTEMPTS} tries`);
        }
        await backoff(attempt);
        continue;
      }
      for (const [chain, page, slots] of placedNow) {
        for (const [id, slot] of slots) positions.set(`${chain} ${id}`, { page, slot });
      }
      for (const chain of next.keys()) {
        const page = (this.tails.get(chain) ?? 0) + 1;
        this.tails.set(chain, page);
        await this.moveHint(chain, page);
      }
      todo = next;
      attempt = 0;
    }
    return positions;
  }

  /** Where a chain's appends went last, by any replica (0 for a new chain). */
  private async tailHint(chain: Chain): Promise<number> {
    const [hint] = await this.store.read([tailKey(chain)]);
    const page = (hint?.value as { page?: unknown } | undefined)?.page;
    return typeof page === 'number' ? page : 0;
  }

  /**
   * Moves a chain's hint forward. Best effort, and only a hint: a replica
   * starting from a stale one reads a few full pages more, nothing worse.
   */
  private async moveHint(chain: Chain, page: number): Promise<void> {
    try {
      const [hint] = await this.store.read([tailKey(chain)]);
      const known = (hint?.value as { page?: unknown } | undefined)?.page;
      if (typeof known === 'number' && known >= page) return;
      await this.store.write(tailKey(chain), { page }, hint?.etag);
    } catch {
      // Another replica moved it first, or the store hiccuped: the pages still tell.
    }
  }
}

function storedDocument(item: StateItem): TaskDocument | undefined {
  if (item.etag === undefined || !documentSchemaVersion(item.value)) return undefined;
  const document = item.value;
  return { ...document, task: taskSchema.parse(document.task) };
}

/** Jittered, growing pause between retries, so racing writers spread out. */
function backoff(attempt: number): Promise<void> {
  const ms = Math.random() * 5 * 2 ** Math.min(attempt, 6);
  return new Promise((resolve) => setTimeout(resolve, ms));
}
