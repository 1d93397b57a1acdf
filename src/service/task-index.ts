/**
 * The task index, and the layout of everything the service keeps in its Dapr
 * state store. Dapr has no list-keys API, so the service records each task id
 * itself; every request touches a bounded amount of it, however many tasks
 * exist (docs/task-index.md has the design and its cost per operation).
 *
 * - A chain is a sequence of pages `task-index|<chain>|<n>` (n = 0, 1, ...),
 *   each holding up to PAGE_SIZE slots. Ids are appended to the chain's last
 *   page in the order their creates commit; a slot whose task left the chain
 *   is set to null, never reused or shifted, so a position (page, slot) names
 *   one entry for good. A full page is followed by the next one.
 * - Chain `all` lists every task in creation order; chain `status-<s>` the
 *   tasks with status s, in the order they took it (GET /tasks?status=).
 * - A task's document `task|<id>` records its version (the ETag clients see,
 *   the service's own, so it means the same on any store) and the positions of
 *   its entries. An entry counts only while the document points back at it:
 *   a create writes both in one transaction, other changes write entries
 *   before the document and clear them after it, so a request that fails
 *   half-way leaves an entry no reader counts, never a document no list finds.
 *
 * Pure: the Dapr adapter (dapr/task-store.ts) reads and writes these shapes.
 */
import type { Task, TaskStatus } from './schemas/task.ts';

/** Slots per page: a page stays a few KiB, so every write and read of one is cheap. */
export const PAGE_SIZE = 128;
/** Pages one list request reads at most; past a long run of cleared slots it answers a short page with a cursor. */
export const LIST_MAX_PAGES = 8;

export type Chain = 'all' | `status-${TaskStatus}`;
export const statusChain = (status: TaskStatus): Chain => `status-${status}`;

/** Where an entry is: page number and slot within it. */
export interface Position {
  page: number;
  slot: number;
}

export interface IndexPage {
  /** Task ids, null where a task left the chain. Never longer than PAGE_SIZE. */
  slots: (string | null)[];
}

/**
 * Which layout of a store a key belongs to. A store starts in generation '0'
 * (keys without a generation); a swap that copies tasks into a store builds
 * them in a generation of its own, so whatever an earlier, abandoned swap left
 * there is never read as current (docs/swap.md).
 */
export type Generation = string;
export const FIRST_GENERATION: Generation = '0';

/** The stored document of a task. */
export interface TaskDocument {
  task: Task;
  /** Starts at 1, +1 on every change: the task's ETag. */
  version: number;
  /**
   * Its entry in chain `all`; null while a swap's mirror has written the
   * document but the copier has not indexed it yet (then byStatus is null too).
   */
  listed: Position | null;
  /** Its entry in the chain of its status. */
  byStatus: Position | null;
  /** Absent for FIRST_GENERATION. */
  generation?: Generation;
}

/** What a delete mirrored during a swap leaves, so that no copy brings the task back. */
export interface Tombstone {
  deleted: true;
  /** The deleted document's version + 1: newer than any write of the task. */
  version: number;
  generation?: Generation;
}

/** What a document key holds, for the generation read. */
/**
 * What a key holds for one generation. `superseded`: a document of a later
 * generation (a swap that started after the one this store belongs to, over
 * the same store): this generation's writes must leave it alone. Docs of all
 * generations share a key, so a write of an abandoned swap still in flight, or
 * owed and redone, would otherwise replace the newer copy with its own.
 */
export type StoredValue =
  | { kind: 'live'; document: TaskDocument }
  | { kind: 'buried'; version: number }
  | { kind: 'superseded' }
  | { kind: 'absent' };

/** Generations in the order swaps make them: 0, then g1, g2, ... */
const generationNumber = (generation: Generation): number =>
  generation === FIRST_GENERATION ? 0 : Number(generation.slice(1));

const TASK_KEY_PREFIX = 'task|';
const PAGE_KEY_PREFIX = 'task-index|';

export const taskKey = (id: string): string => `${TASK_KEY_PREFIX}${id}`;
const generationPart = (generation: Generation): string => (generation === FIRST_GENERATION ? '' : `${generation}|`);
export const pageKey = (chain: Chain, page: number, generation: Generation = FIRST_GENERATION): string =>
  `${PAGE_KEY_PREFIX}${generationPart(generation)}${chain}|${page}`;
/** The key of a chain's tail hint: the page appends last went to (only ever a hint; pages tell). */
export const tailKey = (chain: Chain, generation: Generation = FIRST_GENERATION): string =>
  `${PAGE_KEY_PREFIX}${generationPart(generation)}${chain}|tail`;

const isPosition = (value: unknown): value is Position =>
  typeof value === 'object' &&
  value !== null &&
  typeof (value as Position).page === 'number' &&
  typeof (value as Position).slot === 'number';

/**
 * The value stored at a document key, as `generation` sees it: a value of
 * another generation is absent. The task itself is left to the caller to parse.
 */
export function storedValue(value: unknown, generation: Generation): StoredValue {
  if (typeof value !== 'object' || value === null || !('version' in value)) return { kind: 'absent' };
  const record = value as Record<string, unknown>;
  const own = typeof record['generation'] === 'string' ? record['generation'] : FIRST_GENERATION;
  if (own !== generation) {
    return generationNumber(own) > generationNumber(generation) ? { kind: 'superseded' } : { kind: 'absent' };
  }
  if (typeof record['version'] !== 'number') return { kind: 'absent' };
  if (record['deleted'] === true) return { kind: 'buried', version: record['version'] };
  if (!('task' in record)) return { kind: 'absent' };
  const listed = isPosition(record['listed']) ? record['listed'] : null;
  const byStatus = listed && isPosition(record['byStatus']) ? record['byStatus'] : null;
  return {
    kind: 'live',
    document: { task: record['task'] as Task, version: record['version'], listed, byStatus, generation },
  };
}

/** The document as stored: the generation tag only where it is not the first. */
export function documentValue(document: TaskDocument): object {
  const { generation, ...rest } = document;
  return generation === undefined || generation === FIRST_GENERATION ? rest : { ...rest, generation };
}

export function tombstoneValue(version: number, generation: Generation): Tombstone {
  return generation === FIRST_GENERATION ? { deleted: true, version } : { deleted: true, version, generation };
}

/** A stored page, or an empty one where nothing was written yet. */
export function asPage(value: unknown): IndexPage {
  if (typeof value === 'object' && value !== null && 'slots' in value && Array.isArray(value.slots)) {
    return { slots: value.slots.map((slot) => (typeof slot === 'string' ? slot : null)) };
  }
  return { slots: [] };
}

export const isFull = (page: IndexPage): boolean => page.slots.length >= PAGE_SIZE;

/**
 * `ids` appended to `page`, as far as it has room; an id already there keeps
 * its slot (a retried append is harmless). Returns the new page and the slot
 * of each id placed, and the ids left over for the next page.
 */
export function appendIds(
  page: IndexPage,
  ids: string[],
): { page: IndexPage; slots: Map<string, number>; rest: string[] } {
  const slots = new Map<string, number>();
  const next = [...page.slots];
  const rest: string[] = [];
  for (const id of ids) {
    const existing = next.indexOf(id);
    if (existing >= 0) slots.set(id, existing);
    else if (next.length < PAGE_SIZE) slots.set(id, next.push(id) - 1);
    else rest.push(id);
  }
  return { page: { slots: next }, slots, rest };
}

/** `page` with `slot` cleared if it still holds `id`. */
export function clearSlot(page: IndexPage, slot: number, id: string): IndexPage {
  if (page.slots[slot] !== id) return page;
  const slots = [...page.slots];
  slots[slot] = null;
  return { slots };
}

/** Whether a document still points back at the entry found at `position` of `chain`. */
export function entryCounts(document: TaskDocument, chain: Chain, position: Position): boolean {
  const own = chain === 'all' ? document.listed : document.byStatus;
  if (!own) return false;
  if (chain !== 'all' && statusChain(document.task.status) !== chain) return false;
  return own.page === position.page && own.slot === position.slot;
}

/**
 * A list cursor: the chain it walks, the next position to read, the store
 * generation those positions belong to, and the last task it returned (so a
 * listing that crosses a swap of stores goes on after that task in the new
 * one). Opaque to clients.
 */
export interface Cursor extends Position {
  chain: Chain;
  generation: Generation;
  after: string | undefined;
}

export function encodeCursor(cursor: Cursor): string {
  const generation = cursor.generation === FIRST_GENERATION ? '' : `${cursor.generation}.`;
  const after = cursor.after === undefined ? '' : `.${cursor.after}`;
  return `${generation}${cursor.chain}.${cursor.page}.${cursor.slot}${after}`;
}

/** Every cursor encodeCursor makes, and only those: the list query's schema refuses anything else. */
export const CURSOR =
  /^(?:(g\d{1,9})\.)?(all|status-pending|status-in_progress|status-completed)\.(\d{1,9})\.(\d{1,4})(?:\.([0-9a-f-]{36}))?$/;

/** Generations a swap makes: `g<n>`. */
export const GENERATION = /^(0|g\d{1,9})$/;

/** The cursor in `text`, or undefined when it is not one this service handed out. */
export function decodeCursor(text: string): Cursor | undefined {
  const match = CURSOR.exec(text);
  if (!match?.[2] || match[3] === undefined || match[4] === undefined) return undefined;
  return {
    chain: match[2] as Chain,
    page: Number(match[3]),
    // Past a page's end reads as its end: the next read goes on from there.
    slot: Math.min(Number(match[4]), PAGE_SIZE),
    generation: match[1] ?? FIRST_GENERATION,
    after: match[5],
  };
}

/**
 * The entries of `page` from `slot` on, as positions, skipping cleared slots;
 * and where the next read starts.
 */
export function entriesFrom(
  page: IndexPage,
  pageNumber: number,
  slot: number,
): { entries: { id: string; position: Position }[]; next: Position } {
  const entries: { id: string; position: Position }[] = [];
  for (let at = slot; at < page.slots.length; at++) {
    const id = page.slots[at];
    if (id) entries.push({ id, position: { page: pageNumber, slot: at } });
  }
  const next = isFull(page) ? { page: pageNumber + 1, slot: 0 } : { page: pageNumber, slot: page.slots.length };
  return { entries, next };
}
