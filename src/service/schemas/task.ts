/**
 * The task model and every request and response shape of the task API: one
 * zod schema each, used for validation, TS types and the OpenAPI document.
 */
import { z } from 'zod';
import { CURSOR } from '../task-index.ts';

export const TASK_STATUSES = ['pending', 'in_progress', 'completed'] as const;
export const taskStatusSchema = z.enum(TASK_STATUSES).describe('pending, in_progress or completed.');
export type TaskStatus = z.infer<typeof taskStatusSchema>;

export const taskIdSchema = z.uuid().describe('Task id (a UUIDv7, so ids sort by creation time).');

export const taskSchema = z
  .object({
    id: taskIdSchema,
    title: z.string().min(1).max(200),
    description: z.string(),
    status: taskStatusSchema,
    priority: z.number().int().min(1).max(5),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
    due_at: z.iso
      .datetime({ offset: true })
      .optional()
      .describe('When the task is due; absent when it has no due date.'),
  })
  .meta({ id: 'Task' });
export type Task = z.infer<typeof taskSchema>;

/** Text a store keeps as it was sent: PostgreSQL's jsonb cannot hold U+0000, so no store is given one. */
// eslint-disable-next-line no-control-regex -- U+0000 is the character refused.
const text = () => z.string().regex(/^[^\u0000]*$/, 'must not contain the NUL character (U+0000)');

const title = () => text().trim().min(1).max(200).describe('1 to 200 characters, no NUL.');
const description = () => text().max(2000).describe('Free text, at most 2000 characters, no NUL.');
const priority = () => z.number().int().min(1).max(5).describe('1 (lowest) to 5.');
/** A due date: RFC 3339 with a time zone, in the future when it is set (checked against the clock by the route). */
const dueAt = () =>
  z.iso
    .datetime({ offset: true })
    .describe(
      'When the task is due (RFC 3339, e.g. 2027-01-31T17:00:00Z), in the future. At that time the service publishes task.due and notifies, once, unless the task is completed by then.',
    );

export const createTaskSchema = z
  .strictObject({
    title: title(),
    description: description().default(''),
    status: taskStatusSchema.default('pending'),
    priority: priority().default(1),
    due_at: dueAt().optional(),
  })
  .meta({ id: 'CreateTask' });
export type CreateTask = z.infer<typeof createTaskSchema>;

export const updateTaskSchema = z
  .strictObject({
    title: title().optional(),
    description: description().optional(),
    priority: priority().optional(),
    due_at: dueAt().nullable().optional().describe('A new due date (reschedules the reminder), or null to remove it.'),
  })
  .meta({ id: 'UpdateTask' })
  .describe('The fields to change; the others keep their values. The status has its own route.');
export type UpdateTask = z.infer<typeof updateTaskSchema>;

// Optional: the ?status= form sends none. Fastify hands a missing body over as undefined, or as null when it
// came with `Content-Length: 0`; a JSON `null` is no body either.
export const statusBodySchema = z
  .strictObject({ status: taskStatusSchema })
  .nullish()
  .describe('The new status; leave the body out (or send null) to send it as ?status= instead.');
export const statusQuerySchema = z.strictObject({
  status: taskStatusSchema
    .optional()
    .describe(
      "The form `PUT /tasks/:id/status?status=completed`, for a request without a body (a body's status is the one taken).",
    ),
});

export const taskParamsSchema = z.strictObject({ id: taskIdSchema });

export const listQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20).describe('Page size, 1 to 100.'),
  cursor: z
    .string()
    .regex(CURSOR, 'not a next_cursor this service hands out')
    .optional()
    .describe(
      'next_cursor of the previous page (opaque). One of another listing (another ?status=), or whose tasks moved to another store with its last task gone since, answers 409: list from the start.',
    ),
  status: taskStatusSchema.optional().describe('Only tasks with this status.'),
});
export type ListQuery = z.infer<typeof listQuerySchema>;

export const taskPageSchema = z
  .object({
    items: z.array(taskSchema),
    next_cursor: z
      .string()
      .nullable()
      .describe(
        'Pass as cursor for the next page; null once the listing reached its end. A page may hold fewer than limit tasks and still have a next one.',
      ),
  })
  .meta({ id: 'TaskPage' });
export type TaskPage = z.infer<typeof taskPageSchema>;

export const errorSchema = z
  .object({
    code: z.string().describe('Stable machine-readable error code.'),
    message: z.string(),
    field: z.string().optional().describe('The request field that was rejected (400).'),
    current: taskSchema.optional().describe('The stored version a conflicting write lost to (409).'),
  })
  .meta({ id: 'Error' });
export type ErrorBody = z.infer<typeof errorSchema>;
