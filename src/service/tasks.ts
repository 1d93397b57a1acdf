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
