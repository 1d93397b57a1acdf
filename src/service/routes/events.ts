/**
 * The Subscription's route (TASK_EVENTS_ROUTE). Dapr delivers CloudEvents; the
 * answer is always an explicit status: SUCCESS once handled, RETRY when
 * handling failed (Dapr redelivers), DROP for what no retry can fix.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { TASK_EVENTS_ROUTE } from '../../api/contract.ts';
import { isServiceError } from '../errors.ts';
import type { EventCounters } from '../event-counters.ts';
import { classifyDelivery } from '../events.ts';
import { LOG } from '../logging.ts';
import { requireSidecar } from '../plugins/sidecar-auth.ts';
import type { Notifier } from '../ports.ts';
import type { LiveSettings } from '../settings.ts';
import { deliveryAnswerSchema, type DeliveryAnswer } from '../schemas/event.ts';

export interface EventRoutesOptions {
  /** Undefined when no notification service is configured: completed tasks are then only acknowledged. */
  notifier: Notifier | undefined;
  counters: EventCounters;
  /** Dapr's app token: deliveries without it are not from this pod's sidecar (plugins/sidecar-auth.ts). */
  appToken?: string | undefined;
  /** notifications-enabled off: events are handled, nobody is told. */
  settings: LiveSettings;
}

export default function eventRoutes(fastify: FastifyInstance, options: EventRoutesOptions, done: () => void): void {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.addContentTypeParser(
    'application/cloudevents+json',
    { parseAs: 'string' },
    app.getDefaultJsonParser('error', 'error'),
  );

  app.post(
    TASK_EVENTS_ROUTE,
    { preHandler: requireSidecar(options.appToken), schema: { hide: true, response: { 200: deliveryAnswerSchema } } },
    async (request): Promise<DeliveryAnswer> => {
      const event = classifyDelivery(request.body);
      if (event.action === 'drop') {
        request.log.warn({ reason: event.reason }, LOG.eventDropped);
        options.counters.answered(event.type ?? 'unknown', 'DROP');
        return { status: 'DROP' };
      }
      const fields = { type: event.type, eventId: event.id, taskId: event.task.id };
      if (
        event.notify !== undefined &&
        options.notifier !== undefined &&
        options.settings.current.notificationsEnabled
      ) {
        try {
          await options.notifier.notify(event.id, event.task, event.notify);
        } catch (error) {
          request.log.warn(
            { ...fields, code: isServiceError(error) ? error.code : 'internal', err: error },
            LOG.eventRetried,
          );
          options.counters.answered(event.type, 'RETRY');
          return { status: 'RETRY' };
        }
        options.counters.notified();
        request.log.info(fields, LOG.notificationSent);
      }
      request.log.info(fields, LOG.eventHandled);
      options.counters.answered(event.type, 'SUCCESS');
      return { status: 'SUCCESS' };
    },
  );

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/plain; version=0.0.4; charset=utf-8').send(options.counters.render()),
  );
  done();
}
