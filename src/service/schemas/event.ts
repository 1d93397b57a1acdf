/** Task events as they travel through pub/sub: CloudEvents 1.0 whose data is the task. */
import { z } from 'zod';
import { TASK_EVENT_TYPES } from '../../api/contract.ts';
import { taskSchema } from './task.ts';

export { TASK_EVENT_TYPES, type TaskEventType } from '../../api/contract.ts';

/** What the subscription route needs of a delivered CloudEvent; Dapr adds fields (topic, traceid, ...) we ignore. */
export const deliveredEventSchema = z.object({
  id: z.string().min(1),
  type: z.string().min(1),
  data: z.unknown(),
});

export const taskEventSchema = z.object({
  id: z.string().min(1),
  type: z.enum(TASK_EVENT_TYPES),
  data: taskSchema,
});

export const NOTIFICATION_REASONS = ['completed', 'due'] as const;
export type NotificationReason = (typeof NOTIFICATION_REASONS)[number];

/** What the task service sends the notification service for each completed task, and each task that fell due. */
export const notificationSchema = z
  .object({
    event_id: z.string().min(1).describe('The CloudEvent id; a redelivered event is recorded once.'),
    reason: z
      .enum(NOTIFICATION_REASONS)
      .default('completed')
      .describe('completed: the task was completed; due: its due date came and it is not completed.'),
    task: taskSchema,
  })
  .meta({ id: 'Notification' });
export type Notification = z.infer<typeof notificationSchema>;

/** Dapr's answers to a delivery: SUCCESS acknowledges, RETRY redelivers, DROP discards with a warning. */
export const deliveryAnswerSchema = z.object({ status: z.enum(['SUCCESS', 'RETRY', 'DROP']) });
export type DeliveryAnswer = z.infer<typeof deliveryAnswerSchema>;
