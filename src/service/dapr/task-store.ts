/**
 * TaskStore on a Dapr state store: task documents plus the bucketed id index
 * (task-index.ts), written together in Dapr state transactions.
 */
import { StateConcurrencyEnum, StateConsistencyEnum, type DaprClient } from '@dapr/dapr';
import type { OperationType } from '@dapr/dapr/types/Operation.type.js';
import { isServiceError, ServiceError } from '../errors.ts';
import { KeyedQueue } from '../keyed-queue.ts';
import type { StoredTask, TaskStore } from '../ports.ts';
import { taskSchema, type ListQuery, type Task, type TaskPage } from '../schemas/task.ts';
import {
  allBucketKeys,
  asBucket,
  bucketKey,
  bucketOf,
  idsAfter,
  taskKey,
  withId,
  withoutId,
  type IndexBucket,
} from '../task-index.ts';
import { callDapr } from './client.ts';

interface StateItem {
  key: string;
  value: unknown;
  /** Absent when the key does not exist. */
  etag: string | undefined;
}

/** How often a create or delete re-reads its index bucket after losing a race for it before giving up with a 503. */
const INDEX_ATTEMPTS = 8;
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

export class DaprTaskStore implements TaskStore {
  private readonly client: DaprClient;
  private readonly storeName: string;
  private readonly bucketWrites = new KeyedQueue();

  constructor(client: DaprClient, storeName: string) {
    this.client = client;
    this.storeName = storeName;
  }

  /**
   * Reads keys with their ETags (the SDK's `get` drops the ETag; `getBulk` keeps
   * it), in the order asked for: daprd answers a bulk get in completion order.
   */
  private async read(keys: string[]): Promise<StateItem[]> {
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

  async get(id: string): Promise<StoredTask | undefined> {
    const [item] = await this.read([taskKey(id)]);
    return item && storedTask(item);
  }

  async replace(task: Task, etag: string): Promise<void> {
    await callDapr('state save', () =>
      this.client.state.save(this.storeName, [{ key: taskKey(task.id), value: task, etag, options: FIRST_WRITE }]),
    );
  }

  async create(task: Task): Promise<void> {
    await this.changeIndexed(task.id, (bucket) => withId(bucket, task.id), {
      operation: 'upsert',
      request: { key: taskKey(task.id), value: task },
    });
  }

  async delete(id: string): Promise<Task | undefined> {
    const stored = await this.get(id);
    // Even when the document is gone, a stale index entry (see changeIndexed) is removed.
    await this.changeIndexed(id, (bucket) => withoutId(bucket, id), {
      operation: 'delete',
      request: { key: taskKey(id) },
    });
    return stored?.task;
  }

  /**
   * Applies `taskOperation` and the matching change to the id's index bucket in
   * one transaction, the bucket guarded by its ETag. A lost race re-reads the
   * bucket and tries again. The task operation is idempotent on purpose: Dapr's
   * Redis store runs a transaction as MULTI/EXEC, where a failed ETag check does
   * not undo the other operations, so the retry must be able to repeat them.
   */
  private changeIndexed(
    id: string,
    change: (bucket: IndexBucket) => IndexBucket,
    taskOperation: OperationType,
  ): Promise<void> {
    const key = bucketKey(bucketOf(id));
    return this.bucketWrites.run(key, () => this.changeBucket(key, change, taskOperation));
  }

  private async changeBucket(
    key: string,
    change: (bucket: IndexBucket) => IndexBucket,
    taskOperation: OperationType,
  ): Promise<void> {
    for (let attempt = 1; attempt <= INDEX_ATTEMPTS; attempt++) {
      const bucket = await this.existingBucket(key);
      const operations: OperationType[] = [
        taskOperation,
        {
          operation: 'upsert',
          request: { key, value: change(asBucket(bucket.value)), ...etagField(bucket.etag), options: FIRST_WRITE },
        },
      ];
      try {
        await callDapr('state transaction', () => this.client.state.transaction(this.storeName, operations));
        return;
      } catch (error) {
        // daprd reports a transaction's ETag mismatch as a generic 500 on some stores: a changed bucket tells.
        if (!isServiceError(error, 'store_unavailable') && !isServiceError(error, 'etag_mismatch')) throw error;
        const [now] = await this.read([key]);
        if (now?.etag === bucket.etag) throw error;
        await backoff(attempt);
      }
    }
    throw new ServiceError(
      'index_contention',
      `index bucket ${key} kept changing; gave up after ${INDEX_ATTEMPTS} tries`,
    );
  }

  /** The bucket with its ETag, created empty (insert-only) on first use so that every later write can be guarded. */
  private async existingBucket(key: string): Promise<StateItem & { etag: string }> {
    for (;;) {
      const [item] = await this.read([key]);
      if (item?.etag !== undefined) return { ...item, etag: item.etag };
      try {
        // first-write without an ETag is insert-only on both stores; losing that race is fine.
        await callDapr('state save', () =>
          this.client.state.save(this.storeName, [{ key, value: { ids: [] }, options: FIRST_WRITE }]),
        );
      } catch (error) {
        if (!isServiceError(error, 'etag_mismatch') && !isServiceError(error, 'store_unavailable')) throw error;
      }
    }
  }

  async list(query: ListQuery): Promise<TaskPage> {
    const buckets = (await this.read(allBucketKeys())).map((item) => asBucket(item.value));
    const candidates = idsAfter(buckets, query.cursor);
    const items: Task[] = [];
    let position = 0;
    // Read pages of documents until the page is full: a status filter may skip many.
    while (items.length < query.limit && position < candidates.length) {
      const ids = candidates.slice(position, position + query.limit);
      const documents = await this.read(ids.map(taskKey));
      for (const item of documents) {
        position++;
        const stored = storedTask(item);
        // An id without a document is a create or delete still in flight: not listed.
        if (stored && (query.status === undefined || stored.task.status === query.status)) items.push(stored.task);
        if (items.length === query.limit) break;
      }
    }
    const last = items.at(-1);
    return { items, next_cursor: position < candidates.length && last ? last.id : null };
  }
}

function storedTask(item: StateItem): StoredTask | undefined {
  if (item.etag === undefined) return undefined;
  return { task: taskSchema.parse(item.value), etag: item.etag };
}

/** Jittered, growing pause between index retries, so racing writers spread out. */
function backoff(attempt: number): Promise<void> {
  const ms = Math.random() * 5 * 2 ** Math.min(attempt, 6);
  return new Promise((resolve) => setTimeout(resolve, ms));
}
