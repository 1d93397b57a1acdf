/**
 * What the routes need from the outside world, one small interface per Dapr
 * building block. The Dapr adapters in dapr/ are the only implementations;
 * every method throws a ServiceError on failure, never returns one.
 */
import type { NotificationReason, TaskEventType } from './schemas/event.ts';
import type { ListQuery, Task, TaskPage } from './schemas/task.ts';

export interface StoredTask {
  task: Task;
  /** The store's version of the document, passed back to update it. */
  etag: string;
}

export interface TaskStore {
  /** Writes the task and indexes its id, in one transaction. */
  create(task: Task): Promise<void>;
  get(id: string): Promise<StoredTask | undefined>;
  /** Replaces the task if it is still at `etag`; throws etag_mismatch otherwise. Returns the new ETag's version. */
  replace(task: Task, etag: string): Promise<number>;
  /** Deletes the task and its index entry, in one transaction; returns what was deleted, undefined when nothing was. */
  delete(id: string): Promise<Task | undefined>;
  list(query: ListQuery): Promise<TaskPage>;
  /** Whether `mark` is recorded in the store (what was announced once, like a task gone overdue). */
  marked(mark: string): Promise<boolean>;
  /** Records `mark`; one there already stays as it is. */
  mark(mark: string): Promise<void>;
}

export interface EventPublisher {
  /** `id`: the CloudEvent's, when a repeat must carry the same one (a due date announced again); random otherwise. */
  publish(type: TaskEventType, task: Task, id?: string): Promise<void>;
}

export interface Notifier {
  notify(eventId: string, task: Task, reason: NotificationReason): Promise<void>;
}

/** One reminder per task with a due date, kept outside this process (Dapr's Jobs API). */
export interface DueReminders {
  /** Schedules task `id`'s reminder at `dueAt` (RFC 3339), moving the one it had. */
  schedule(id: string, dueAt: string): Promise<void>;
  /** Cancels task `id`'s reminder; nothing when it has none. */
  cancel(id: string): Promise<void>;
}

export interface Secrets {
  read(name: string, key: string): Promise<string>;
}

export interface Sidecar {
  /** Names of the components the sidecar has loaded; throws sidecar_unavailable when it does not answer. */
  loadedComponents(): Promise<string[]>;
}
