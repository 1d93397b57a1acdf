/**
 * The overdue sweep (spec.overdueSweep): daprd's cron binding posts to
 * OVERDUE_SWEEP_ROUTE on its schedule, in every pod. Each run pages through
 * the tasks not completed, by status through the store's bounded index, and
 * publishes task.overdue for each past its due date not marked yet, then marks
 * it in the store: once per task and due date, whichever pod sweeps. The
 * event's id is the task's and the due date's, so one published again (a
 * failure between publish and mark, two pods sweeping at one instant) is
 * recognisably the same.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { OVERDUE_SWEEP_ROUTE } from '../../api/contract.ts';
import { LOG } from '../logging.ts';
import { ignoreJsonBody, requireSidecar } from '../plugins/sidecar-auth.ts';
import type { EventPublisher, TaskStore } from '../ports.ts';
import type { TaskStatus } from '../schemas/task.ts';
import type { StartupGate } from '../startup.ts';

export interface SweepRoutesOptions {
  store: TaskStore;
  events: EventPublisher;
  gate: StartupGate;
  appToken?: string | undefined;
}

/** The statuses a task can be overdue in. */
const OPEN: TaskStatus[] = ['pending', 'in_progress'];
const PAGE = 100;

/** The CloudEvent id of a task gone overdue, for one due date; its mark in the store has no '/' (a key in a URL). */
export const overdueEventId = (id: string, dueAt: string): string => `${id}/overdue/${dueAt}`;
const overdueMark = (id: string, dueAt: string): string => `overdue|${id}|${dueAt}`;

export default function sweepRoutes(fastify: FastifyInstance, options: SweepRoutesOptions, done: () => void): void {
  const { store, events, gate } = options;
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  // The cron binding posts an empty JSON body.
  ignoreJsonBody(app);
  app.post(
    OVERDUE_SWEEP_ROUTE,
    {
      preHandler: requireSidecar(options.appToken),
      schema: { hide: true, response: { 200: z.object({ overdue: z.number(), announced: z.number() }) } },
    },
    async (request) => {
      gate.check();
      const now = Date.now();
      let overdue = 0;
      let announced = 0;
      for (const status of OPEN) {
        let cursor: string | undefined;
        do {
          const page = await store.list({ status, limit: PAGE, ...(cursor === undefined ? {} : { cursor }) });
          for (const task of page.items) {
            if (task.status === 'completed' || task.due_at === undefined || Date.parse(task.due_at) > now) continue;
            overdue += 1;
            const mark = overdueMark(task.id, task.due_at);
            if (await store.marked(mark)) continue;
            // Published before it is marked: a failure between the two publishes it again, under the same id.
            await events.publish('task.overdue', task, overdueEventId(task.id, task.due_at));
            await store.mark(mark);
            announced += 1;
          }
          cursor = page.next_cursor ?? undefined;
        } while (cursor !== undefined);
      }
      request.log.info({ overdue, announced }, LOG.sweepDone);
      return { overdue, announced };
    },
  );
  done();
}
