import { createHash } from 'node:crypto';

/** JSON with object keys sorted, so equal values always serialize (and hash) the same. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) =>
    item && typeof item === 'object' && !Array.isArray(item)
      ? Object.fromEntries(Object.entries(item).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : item,
  );
}

/**
 * 16 hex digits of the SHA-256 of `text`. Read from the digest's first bytes
 * rather than sliced from its hex string: a slice would keep the whole 64-digit
 * string alive in every cache entry holding a hash.
 */
export function shortHash(text: string): string {
  return createHash('sha256').update(text).digest().toString('hex', 0, 8);
}

/** A short, stable content hash for annotations. */
export function contentHash(value: unknown): string {
  return shortHash(canonicalJson(value));
}
