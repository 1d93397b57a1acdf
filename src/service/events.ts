/** Building task events and deciding what a delivered one asks of the service. Pure. */
import type { NotificationReason, TaskEventType } from './schemas/event.ts';
import { deliveredEventSchema, taskEventSchema } from './schemas/event.ts';
import type { Task } from './schemas/task.ts';

export interface TaskCloudEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: TaskEventType;
  time: string;
  datacontenttype: 'application/json';
  data: Task;
}

export function taskEvent(type: TaskEventType, task: Task, source: string, id: string, now: Date): TaskCloudEvent {
  return {
    specversion: '1.0',
    id,
    source,
    type,
    time: now.toISOString(),
    datacontenttype: 'application/json',
    data: task,
  };
}

export type DeliveredEvent =
  /** A task event; `notify` with why, when the notification service must hear of it (completed, or fell due). */
  | { action: 'handle'; id: string; type: TaskEventType; task: Task; notify: NotificationReason | undefined }
  /** Not a task event this service understands; redelivering it would not help. `type` as delivered, if any. */
  | { action: 'drop'; reason: string; type?: string };

export function classifyDelivery(body: unknown): DeliveredEvent {
  const envelope = deliveredEventSchema.safeParse(body);
  if (!envelope.success) return { action: 'drop', reason: 'not a CloudEvent' };
  const event = taskEventSchema.safeParse(envelope.data);
  if (!event.success) {
    return { action: 'drop', reason: `not a task event: ${envelope.data.type}`, type: envelope.data.type };
  }
  const { id, type, data } = event.data;
  const notify = type === 'task.completed' ? 'completed' : type === 'task.due' ? 'due' : undefined;
  return { action: 'handle', id, type, task: data, notify };
}
