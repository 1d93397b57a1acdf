/**
 * The route daprd calls when one of this app's Dapr jobs fires (POST
 * /job/<name>): a task's due-date reminder (dapr/jobs.ts). It announces
 * task.due only for a task that still has that due date and is not
 * completed; the event's id is the task's and the due date's, so a reminder
 * delivered twice is notified once. A reminder that fires before its task's
 * due date (the date moved by a write that then failed) is moved to it.
 * Answers 503 when the announcement fails: the scheduler tries again.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { DUE_JOB_PREFIX } from '../dapr/jobs.ts';
import { LOG } from '../logging.ts';
import { ignoreJsonBody, requireSidecar } from '../plugins/sidecar-auth.ts';
import type { DueReminders, EventPublisher, TaskStore } from '../ports.ts';
import { taskIdSchema } from '../schemas/task.ts';
import type { StartupGate } from '../startup.ts';

export interface JobRoutesOptions {
  store: TaskStore;
  events: EventPublisher;
  reminders: DueReminders;
  gate: StartupGate;
  appToken?: string | undefined;
}

/** A reminder this much early is a clock apart, not a moved due date: it announces. */
const EARLY_TOLERANCE_MS = 1_000;

/** The CloudEvent id of a task's due date: the same for every delivery of one reminder. */
export const dueEventId = (id: string, dueAt: string): string => `${id}/due/${dueAt}`;

export default function jobRoutes(fastify: FastifyInstance, options: JobRoutesOptions, done: () => void): void {
  const { store, events, reminders, gate } = options;
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  // daprd posts the job's data as JSON, empty for these jobs (the name says which task).
  ignoreJsonBody(app);
  app.post(
    '/job/:name',
    {
      preHandler: requireSidecar(options.appToken),
      schema: { hide: true, params: z.object({ name: z.string() }), response: { 200: z.object({}) } },
    },
    async (request) => {
      gate.check();
      const { name } = request.params;
      const id = taskIdSchema.safeParse(name.slice(DUE_JOB_PREFIX.length));
      if (!name.startsWith(DUE_JOB_PREFIX) || !id.success) {
        request.log.warn({ job: name }, LOG.jobUnknown);
        return {};
      }
      const stored = await store.get(id.data);
      const task = stored?.task;
      if (task?.due_at === undefined || task.status === 'completed') {
        request.log.info({ taskId: id.data, found: task !== undefined }, LOG.reminderSkipped);
        return {};
      }
      if (Date.parse(task.due_at) - Date.now() > EARLY_TOLERANCE_MS) {
        await reminders.schedule(task.id, task.due_at);
        request.log.info({ taskId: task.id, dueAt: task.due_at }, LOG.reminderMoved);
        return {};
      }
      await events.publish('task.due', task, dueEventId(task.id, task.due_at));
      request.log.info({ taskId: task.id, dueAt: task.due_at }, LOG.reminderFired);
      return {};
    },
  );
  done();
}
