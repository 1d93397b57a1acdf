/** Pure task logic: ids, creation and status changes. No clock or randomness of its own. */
import type { CreateTask, Task, TaskStatus, UpdateTask } from './schemas/task.ts';

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Ids sort
 * by creation time, so the id index pages through tasks in creation order.
 */
export function uuidV7(nowMs: number, random: Uint8Array): string {
  const bytes = new Uint8Array(16);
  bytes.set(random.subarray(0, 10), 6);
  let millis = nowMs;
  for (let i = 5; i >= 0; i--) {
    bytes[i] = millis % 256;
    millis = Math.floor(millis / 256);
  }
  bytes[6] = 0x70 | ((bytes[6] ?? 0) & 0x0f);
  bytes[8] = 0x80 | ((bytes[8] ?? 0) & 0x3f);
  const hex = Buffer.from(bytes).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * UUIDv7s that only go up in this process (RFC 9562's monotonic random,
 * method 2): within one millisecond, or when the clock steps back, the next id
 * is the last one plus a random step. The store appends ids to its index in
 * the order they are made, so the index's order is id order too.
 */
export class MonotonicIds {
  private last: { ms: number; random: bigint } | undefined;

  /** `random`: at least 10 random bytes. */
  next(nowMs: number, random: Uint8Array): string {
    const fresh = BigInt(`0x${Buffer.from(random.subarray(0, 10)).toString('hex')}`) & RANDOM_BITS;
    let ms = nowMs;
    let value = fresh;
    if (this.last && ms <= this.last.ms) {
      ms = this.last.ms;
      // A step of up to 2^32: ids stay unguessable in sequence, with room for billions per millisecond.
      value = this.last.random + 1n + (fresh & 0xffffffffn);
      if (value > RANDOM_BITS) {
        ms += 1;
        value = fresh;
      }
    }
    this.last = { ms, random: value };
    return uuidV7Of(ms, value);
  }
}

/** A UUIDv7's 74 random bits: 12 in rand_a, then 62 in rand_b (RFC 9562, 5.7). */
const RANDOM_BITS = (1n << 74n) - 1n;

function uuidV7Of(ms: number, random: bigint): string {
  const bytes = new Uint8Array(16);
  let millis = ms;
  for (let i = 5; i >= 0; i--) {
    bytes[i] = millis % 256;
    millis = Math.floor(millis / 256);
  }
  const randA = Number(random >> 62n);
  let randB = random & ((1n << 62n) - 1n);
  bytes[6] = 0x70 | (randA >> 8);
  bytes[7] = randA & 0xff;
  for (let i = 15; i >= 9; i--) {
    bytes[i] = Number(randB & 0xffn);
    randB >>= 8n;
  }
  bytes[8] = 0x80 | Number(randB & 0x3fn);
  const hex = Buffer.from(bytes).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function newTask(input: CreateTask, id: string, now: Date): Task {
  const timestamp = now.toISOString();
  const { due_at: dueAt, ...fields } = input;
  return {
    id,
    ...fields,
    created_at: timestamp,
    updated_at: timestamp,
    ...(dueAt === undefined ? {} : { due_at: storedDueAt(dueAt) }),
  };
}

/** A due date as stored: the same instant in UTC, as toISOString writes it, so copies compare as text. */
export const storedDueAt = (value: string): string => new Date(value).toISOString();

/** Why a due date (its form already checked) is refused: it is not in the future. */
export function dueAtProblem(value: string, now: Date): string | undefined {
  return new Date(value).getTime() <= now.getTime()
    ? `due_at: must be in the future (it is ${now.toISOString()} now)`
    : undefined;
}

/** The task with `update`'s fields changed; a due_at of null removes the due date. */
export function withChanges(task: Task, update: UpdateTask, now: Date): Task {
  const next: Task = { ...task, updated_at: now.toISOString() };
  if (update.title !== undefined) next.title = update.title;
  if (update.description !== undefined) next.description = update.description;
  if (update.priority !== undefined) next.priority = update.priority;
  if (update.due_at === null) delete next.due_at;
  else if (update.due_at !== undefined) next.due_at = storedDueAt(update.due_at);
  return next;
}

/** The due date a task's reminder should fire at: a task not completed, due in the future. */
export function reminderAt(task: Task | undefined, now: Date): string | undefined {
  if (task?.due_at === undefined || task.status === 'completed') return undefined;
  return new Date(task.due_at).getTime() > now.getTime() ? task.due_at : undefined;
}

/**
 * What a write does to the task's reminder: `schedule` at the new due date
 * (before the write, so no stored due date lacks one), `cancel` (after it: a
 * reminder outliving its due date finds nothing to announce), or nothing.
 */
export function reminderChange(
  before: Task | undefined,
  after: Task | undefined,
  now: Date,
): { schedule: string } | 'cancel' | undefined {
  const had = reminderAt(before, now);
  const wanted = reminderAt(after, now);
  if (wanted !== undefined && wanted !== had) return { schedule: wanted };
  if (wanted === undefined && had !== undefined) return 'cancel';
  return undefined;
}

export function withStatus(task: Task, status: TaskStatus, now: Date): Task {
  return { ...task, status, updated_at: now.toISOString() };
}

/** True when this change is the one that completes the task (announced once, not on a repeat). */
export function completes(before: Task, after: Task): boolean {
  return before.status !== 'completed' && after.status === 'completed';
}
