/** Pure task logic: ids, creation and status changes. No clock or randomness of its own. */
import type { CreateTask, Task, TaskStatus } from './schemas/task.ts';

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
  return { id, ...input, created_at: timestamp, updated_at: timestamp };
}

export function withStatus(task: Task, status: TaskStatus, now: Date): Task {
  return { ...task, status, updated_at: now.toISOString() };
}

/** True when this change is the one that completes the task (announced once, not on a repeat). */
export function completes(before: Task, after: Task): boolean {
  return before.status !== 'completed' && after.status === 'completed';
}
