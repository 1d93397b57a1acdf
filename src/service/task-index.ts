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
 *   entries are written before the document and cleared after it, so a request
 *   that fails half-way leaves an entry no reader counts, never a document no
 *   list finds.
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

/** The stored document of a task. */
export interface TaskDocument {
  task: Task;
  /** Starts at 1, +1 on every change: the task's ETag. */
  version: number;
  /** Its entry in chain `all`. */
  listed: Position;
  /** Its entry in the chain of its status. */
  byStatus: Position;
}

const TASK_KEY_PREFIX = 'task|';
const PAGE_KEY_PREFIX = 'task-index|';

export const taskKey = (id: string): string => `${TASK_KEY_PREFIX}${id}`;
export const pageKey = (chain: Chain, page: number): string => `${PAGE_KEY_PREFIX}${chain}|${page}`;

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
  if (chain !== 'all' && statusChain(document.task.status) !== chain) return false;
  return own.page === position.page && own.slot === position.slot;
}

/** A list cursor: the chain it walks and the next position to read. Opaque to clients. */
export interface Cursor extends Position {
  chain: Chain;
}

export const encodeCursor = (cursor: Cursor): string => `${cursor.chain}.${cursor.page}.${cursor.slot}`;

const CURSOR = /^(all|status-pending|status-in_progress|status-completed)\.(\d{1,9})\.(\d{1,4})$/;

/** The cursor in `text`, or undefined when it is not one this service handed out. */
export function decodeCursor(text: string): Cursor | undefined {
  const match = CURSOR.exec(text);
  if (!match?.[1] || match[2] === undefined || match[3] === undefined) return undefined;
  const slot = Number(match[3]);
  if (slot > PAGE_SIZE) return undefined;
  return { chain: match[1] as Chain, page: Number(match[2]), slot };
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
