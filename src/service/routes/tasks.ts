/** The task API: create, read, list, change status, delete. */
import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { Announcer } from '../announcer.ts';
import { isServiceError, ServiceError } from '../errors.ts';
import { LOG } from '../logging.ts';
import { requireToken } from '../plugins/auth.ts';
import { OPTIONAL_BODY } from '../plugins/openapi.ts';
import type { DueReminders, EventPublisher, TaskStore } from '../ports.ts';
import {
  createTaskSchema,
  errorSchema,
  listQuerySchema,
  statusBodySchema,
  statusQuerySchema,
  taskPageSchema,
  taskParamsSchema,
  taskSchema,
  updateTaskSchema,
  type Task,
} from '../schemas/task.ts';
import type { LiveSettings } from '../settings.ts';
import type { StartupGate } from '../startup.ts';
import { completes, dueAtProblem, MonotonicIds, newTask, reminderChange, withChanges, withStatus } from '../tasks.ts';

export interface TaskRoutesOptions {
  store: TaskStore;
  events: EventPublisher;
  /** Due dates' reminders (Dapr's Jobs API). */
  reminders: DueReminders;
  settings: LiveSettings;
  gate: StartupGate;
  /** Whether writes need the API token: the document declares bearer security, and 401, only then. */
  secured: boolean;
}

/** The error answers a route documents: 400 and 503 on every route, the rest where they can happen. */
const errorsOf = (...codes: number[]): Record<number, typeof errorSchema> =>
  Object.fromEntries([400, 503, ...codes].map((code) => [code, errorSchema]));

/** HTTP ETags are quoted; the store's are not. */
const quoted = (etag: string): string => `"${etag}"`;
const unquoted = (header: string): string => header.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');

const notFound = (id: string): ServiceError => new ServiceError('task_not_found', `task ${id} not found`);
const conflict = (current: Task): ServiceError =>
  new ServiceError('etag_mismatch', `task ${current.id} changed since it was read`, { current });

/** A due date sent in the past, or at this instant, is refused with 400 naming the field. */
function checkDueAt(value: string | null | undefined, now: Date): void {
  if (value === undefined || value === null) return;
  const problem = dueAtProblem(value, now);
  if (problem !== undefined) throw new ServiceError('validation_failed', problem, { field: 'due_at' });
}

/** Cancels task `id`'s reminder, after its write: one that survives (logged) finds nothing to announce when it fires. */
async function cancelReminder(reminders: DueReminders, id: string, log: FastifyBaseLogger): Promise<void> {
  await reminders.cancel(id).catch((error: unknown) => {
    log.warn({ err: error, taskId: id }, LOG.reminderCancelFailed);
  });
}

/**
 * Writes `after` over `before` (undefined: a new task) with the reminder kept
 * in step: a new due date is scheduled before the write and the old one's
 * reminder cancelled after it, so a stored due date never lacks its reminder. A reminder left behind by a write that
 * failed is harmless (routes/jobs.ts checks the task when it fires); one moved
 * later by a failed write is put back.
 */
async function withReminder<T>(
  reminders: DueReminders,
  id: string,
  before: Task | undefined,
  after: Task,
  write: () => Promise<T>,
  log: FastifyBaseLogger,
): Promise<T> {
  const now = new Date();
  const change = reminderChange(before, after, now);
  if (change !== undefined && change !== 'cancel') await reminders.schedule(id, change.schedule);
  let result: T;
  try {
    result = await write();
  } catch (error) {
    const back = change !== undefined && change !== 'cancel' ? reminderChange(after, before, now) : undefined;
    if (back !== undefined && back !== 'cancel') {
      await reminders.schedule(id, back.schedule).catch((undo: unknown) => {
        log.warn({ err: undo, taskId: id }, LOG.reminderUndoFailed);
      });
    }
    throw error;
  }
  if (change === 'cancel') await cancelReminder(reminders, id, log);
  return result;
}

export default function taskRoutes(fastify: FastifyInstance, options: TaskRoutesOptions, done: () => void): void {
  const { store, events, reminders, settings, gate, secured } = options;
  // Events follow the committed write, sent after the answer (announcer.ts).
  const announcer = new Announcer(events);
  fastify.addHook('onClose', () => announcer.drain());
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const token = requireToken(gate);
  // Every write: the token (when one is set), then the read-only setting.
  const authorize = async (request: FastifyRequest): Promise<void> => {
    await token(request);
    if (settings.current.readOnly) {
      throw new ServiceError('read_only', 'the service is read-only for now (its read-only setting); retry later');
    }
  };
  // What a write route's schema adds when the token is required.
  const security = secured ? { security: [{ bearer: [] }] } : {};
  const writeErrors = (...codes: number[]) => (secured ? errorsOf(401, ...codes) : errorsOf(...codes));
  const ids = new MonotonicIds();

  /**
   * Task `id` changed by `change`, at the version If-Match names (or the one
   * read), its reminder in step; a lost race answers 409 with the stored task.
   */
  const changeTask = async (
    id: string,
    ifMatch: string | undefined,
    change: (task: Task) => Task,
    log: FastifyBaseLogger,
  ): Promise<{ before: Task; after: Task; version: number }> => {
    const current = await store.get(id);
    if (!current) throw notFound(id);
    const expected = ifMatch === undefined ? current.etag : unquoted(ifMatch);
    if (expected !== current.etag) throw conflict(current.task);
    const before = current.task;
    const after = change(before);
    try {
      const version = await withReminder(reminders, id, before, after, () => store.replace(after, expected), log);
      return { before, after, version };
    } catch (error) {
      if (!isServiceError(error, 'etag_mismatch')) throw error;
      const now = await store.get(id);
      throw now ? conflict(now.task) : notFound(id);
    }
  };

  // eslint-disable-next-line @typescript-eslint/require-await -- Fastify runs async hooks without a done callback.
  app.addHook('onRequest', async () => {
    gate.check();
  });

  app.post(
    '/tasks',
    {
      preHandler: authorize,
      schema: {
        summary: 'Create a task',
        ...security,
        body: createTaskSchema,
        response: { 201: taskSchema, ...writeErrors() },
      },
    },
    async (request, reply) => {
      const now = new Date();
      checkDueAt(request.body.due_at, now);
      const task = newTask(request.body, ids.next(now.getTime(), randomBytes(10)), now);
      await withReminder(reminders, task.id, undefined, task, () => store.create(task), request.log);
      await announcer.announce('task.created', task, request.log);
      // A new task is at version 1: the ETag a client sends back in If-Match without reading the task first.
      return reply.code(201).header('location', `/tasks/${task.id}`).header('etag', quoted('1')).send(task);
    },
  );

  app.get(
    '/tasks/:id',
    { schema: { summary: 'Get a task', params: taskParamsSchema, response: { 200: taskSchema, ...errorsOf(404) } } },
    async (request, reply) => {
      const stored = await store.get(request.params.id);
      if (!stored) throw notFound(request.params.id);
      return reply.header('etag', quoted(stored.etag)).send(stored.task);
    },
  );

  app.get(
    '/tasks',
    {
      schema: {
        summary: 'List tasks, oldest first (with ?status=, in the order they took it), a page at a time',
        querystring: listQuerySchema,
        response: { 200: taskPageSchema, ...errorsOf(409) },
      },
    },
    (request) => store.list({ ...request.query, limit: Math.min(request.query.limit, settings.current.maxPageSize) }),
  );

  app.put(
    '/tasks/:id/status',
    {
      preHandler: authorize,
      schema: {
        summary: 'Change a task status (JSON body, or ?status=)',
        description: 'Send If-Match with the ETag of GET /tasks/:id to update only that version; a conflict is 409.',
        ...security,
        params: taskParamsSchema,
        querystring: statusQuerySchema,
        body: statusBodySchema,
        [OPTIONAL_BODY]: true,
        response: { 200: taskSchema, ...writeErrors(404, 409) },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const status = request.body?.status ?? request.query.status;
      if (status === undefined) {
        throw new ServiceError('validation_failed', 'status: required, in the JSON body or as ?status=', {
          field: 'status',
        });
      }
      const { before, after, version } = await changeTask(
        id,
        request.headers['if-match'],
        (task) => withStatus(task, status, new Date()),
        request.log,
      );
      if (completes(before, after)) await announcer.announce('task.completed', after, request.log);
      return reply.header('etag', quoted(String(version))).send(after);
    },
  );

  app.patch(
    '/tasks/:id',
    {
      preHandler: authorize,
      schema: {
        summary: 'Change a task: title, description, priority or due date',
        description:
          'Send If-Match with the ETag of GET /tasks/:id to update only that version; a conflict is 409. A new due_at moves the reminder; null removes it.',
        ...security,
        params: taskParamsSchema,
        body: updateTaskSchema,
        response: { 200: taskSchema, ...writeErrors(404, 409) },
      },
    },
    async (request, reply) => {
      checkDueAt(request.body.due_at, new Date());
      const { after, version } = await changeTask(
        request.params.id,
        request.headers['if-match'],
        (task) => withChanges(task, request.body, new Date()),
        request.log,
      );
      return reply.header('etag', quoted(String(version))).send(after);
    },
  );

  app.delete(
    '/tasks/:id',
    {
      preHandler: authorize,
      schema: {
        summary: 'Delete a task',
        ...security,
        params: taskParamsSchema,
        response: { 204: z.null().describe('Deleted.'), ...writeErrors(404) },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const deleted = await store.delete(id);
      if (!deleted) throw notFound(id);
      // After the delete, as withReminder cancels: a reminder outliving its task finds nothing to announce.
      if (deleted.due_at !== undefined && deleted.status !== 'completed') {
        await cancelReminder(reminders, id, request.log);
      }
      await announcer.announce('task.deleted', deleted, request.log);
      return reply.code(204).send(null);
    },
  );
  done();
}
