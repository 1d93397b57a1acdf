/**
 * The id index: Dapr has no list-keys API, so the service records every task id
 * itself, spread over a fixed number of bucket documents. A create or delete
 * rewrites one bucket (guarded by its ETag) in the transaction that writes the
 * task, so concurrent writers conflict only when they hit the same bucket.
 * Listing reads all buckets; a swap copies every task by walking them.
 */

/** Fixed forever: changing it would move ids to other buckets. */
export const INDEX_BUCKETS = 16;

const TASK_KEY_PREFIX = 'task|';
const INDEX_KEY_PREFIX = 'task-index|';

export interface IndexBucket {
  ids: string[];
}

export const taskKey = (id: string): string => `${TASK_KEY_PREFIX}${id}`;

export const bucketKey = (bucket: number): string => `${INDEX_KEY_PREFIX}${bucket}`;

export const allBucketKeys = (): string[] => Array.from({ length: INDEX_BUCKETS }, (_, bucket) => bucketKey(bucket));

/** FNV-1a over the id: stable across processes and versions, spreads UUIDv7s evenly despite their shared time prefix. */
export function bucketOf(id: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    hash ^= id.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % INDEX_BUCKETS;
}

export function withId(bucket: IndexBucket, id: string): IndexBucket {
  return bucket.ids.includes(id) ? bucket : { ids: [...bucket.ids, id] };
}

export function withoutId(bucket: IndexBucket, id: string): IndexBucket {
  return { ids: bucket.ids.filter((existing) => existing !== id) };
}

/** Every indexed id after `cursor`, in id (so creation) order. */
export function idsAfter(buckets: IndexBucket[], cursor: string | undefined): string[] {
  const ids = buckets.flatMap((bucket) => bucket.ids).sort();
  return cursor === undefined ? ids : ids.filter((id) => id > cursor);
}

/** A stored bucket, or an empty one for a bucket no task has reached yet. */
export function asBucket(value: unknown): IndexBucket {
  if (typeof value === 'object' && value !== null && 'ids' in value && Array.isArray(value.ids)) {
    return { ids: value.ids.filter((id): id is string => typeof id === 'string') };
  }
  return { ids: [] };
}
