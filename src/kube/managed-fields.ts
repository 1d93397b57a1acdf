/**
 * Server-side apply's record of who set which field, read for one field
 * manager: the fields it applied with their live values (to compare against
 * what it would apply), and a short hash of its entry.
 *
 * Server-side apply hands a field to whoever changes its value (an update takes
 * it, a forced apply takes it, an unforced one conflicts), so the values behind
 * a manager's field set can change only when the set changes or when that
 * manager applies again. The entry's hash therefore moves whenever one of its
 * fields does, without reading (or sorting and hashing) the values on every
 * watch event; fields others add (defaults, other controllers) never enter it.
 */
import { shortHash } from './hash.ts';
import { identity, type FieldSet, type RawObject } from './objects.ts';

const isRecord = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

const isLeaf = (fields: FieldSet): boolean => Object.keys(fields).every((path) => path === '.');

function matchesKey(item: unknown, key: Record<string, unknown>): boolean {
  return isRecord(item) && Object.entries(key).every(([field, value]) => item[field] === value);
}

/**
 * The part of `value` a field set names. A leaf (`{}` or only `.`) takes the
 * value whole: a scalar, an atomic list or map, or a list item owned entirely.
 */
export function project(value: unknown, fields: FieldSet): unknown {
  if (isLeaf(fields)) return value;
  if (Array.isArray(value)) {
    const picked: unknown[] = [];
    for (const [index, item] of value.entries()) {
      for (const [path, sub] of Object.entries(fields)) {
        const kind = path.slice(0, 2);
        const selector = path.slice(2);
        const hit =
          (kind === 'k:' && matchesKey(item, JSON.parse(selector) as Record<string, unknown>)) ||
          (kind === 'v:' && JSON.stringify(item) === selector) ||
          (kind === 'i:' && Number(selector) === index);
        if (hit) {
          const part = project(item, sub);
          // A keyed item is known by its key fields even where the set does not list them.
          picked.push(kind === 'k:' && isRecord(part) ? { ...(JSON.parse(selector) as object), ...part } : part);
          break;
        }
      }
    }
    return picked;
  }
  if (!isRecord(value)) return value;
  const picked: Record<string, unknown> = {};
  for (const [path, sub] of Object.entries(fields)) {
    if (!path.startsWith('f:')) continue;
    const field = path.slice(2);
    if (field in value) picked[field] = project(value[field], sub);
  }
  return picked;
}

/** `manager`'s own apply entry in `raw`'s managedFields (not a subresource's). */
const applyEntry = (raw: RawObject, manager: string) =>
  raw.metadata?.managedFields?.find(
    (item) => item.manager === manager && item.operation === 'Apply' && !item.subresource,
  );

/** The fields `manager` applied to `raw`, with their live values, plus the object's identity. */
export function appliedFields(raw: RawObject, manager: string): Record<string, unknown> {
  const entry = applyEntry(raw, manager);
  const applied = (entry?.fieldsV1 ? project(raw, entry.fieldsV1) : {}) as Record<string, unknown>;
  const { namespace, name } = identity(raw);
  // apiVersion, kind, name and namespace identify the object; they are never listed as managed fields.
  return {
    ...applied,
    apiVersion: raw.apiVersion ?? '',
    kind: raw.kind ?? '',
    metadata: { ...(applied['metadata'] as object | undefined), name, namespace },
  };
}

/**
 * A hash of `manager`'s apply entry and the object's uid ('' when it applied
 * nothing): it changes whenever one of the fields it applied does. The server
 * writes fieldsV1 in a stable order, so no sorting is needed.
 */
export function appliedFieldsHash(raw: RawObject, manager: string): string {
  const entry = applyEntry(raw, manager);
  return entry
    ? shortHash(`${raw.metadata?.uid ?? ''} ${entry.time ?? ''} ${JSON.stringify(entry.fieldsV1 ?? {})}`)
    : '';
}
