/**
 * The notification service: the task service tells it about every completed
 * task through Dapr service invocation. It records what it received (once per
 * event, as Dapr may redeliver) and shows the last RECEIVED_WINDOW of them at
 * GET /notifications: memory stays bounded however long it runs.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { NOTIFICATIONS_METHOD } from '../api/contract.ts';
import { LOG } from './logging.ts';
import apiBase from './plugins/base.ts';
import { requireSidecar } from './plugins/sidecar-auth.ts';
import { errorSchema } from './schemas/task.ts';
import { notificationSchema, type Notification } from './schemas/event.ts';

const notificationListSchema = z.object({ items: z.array(notificationSchema) });

/** How many notifications are kept (and deduplicated); the oldest goes first. */
export const RECEIVED_WINDOW = 1_000;

export interface NotificationAppOptions {
  /** Dapr's app token: posts without it are not from this pod's sidecar (plugins/sidecar-auth.ts). */
  appToken?: string | undefined;
}

export default async function notificationApp(
  fastify: FastifyInstance,
  options: NotificationAppOptions = {},
): Promise<void> {
  await fastify.register(apiBase, {
    title: 'Notification service',
    description: 'Receives completed tasks from the task service through Dapr service invocation.',
  });
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const received = new Map<string, Notification>();

  app.post(
    `/${NOTIFICATIONS_METHOD}`,
    {
      preHandler: requireSidecar(options.appToken),
      schema: { body: notificationSchema, response: { 204: z.null(), 400: errorSchema, 401: errorSchema } },
    },
    async (request, reply) => {
      if (!received.has(request.body.event_id)) {
        received.set(request.body.event_id, request.body);
        // A Map keeps insertion order: the first key is the oldest.
        if (received.size > RECEIVED_WINDOW) received.delete(received.keys().next().value as string);
        request.log.info({ eventId: request.body.event_id, taskId: request.body.task.id }, LOG.notificationRecorded);
      }
      return reply.code(204).send(null);
    },
  );
  app.get(`/${NOTIFICATIONS_METHOD}`, { schema: { response: { 200: notificationListSchema } } }, () => ({
    items: [...received.values()],
  }));
  // Nothing to wait for: it calls no Dapr API itself.
  app.get('/healthz', { schema: { hide: true } }, () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, () => ({ status: 'ok' }));
}
