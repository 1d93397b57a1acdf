/**
 * The Subscription's route (TASK_EVENTS_ROUTE). Dapr delivers CloudEvents; the
 * answer is always an explicit status: SUCCESS once handled, RETRY when
 * handling failed (Dapr redelivers), DROP for what no retry can fix.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { TASK_EVENTS_ROUTE } from '../../controller/resources/subscription.ts';
import { isServiceError } from '../errors.ts';
import { classifyDelivery } from '../events.ts';
import { LOG } from '../logging.ts';
import type { Notifier } from '../ports.ts';
import { deliveryAnswerSchema, type DeliveryAnswer } from '../schemas/event.ts';

export interface EventRoutesOptions {
  /** Undefined when no notification service is configured: completed tasks are then only acknowledged. */
  notifier: Notifier | undefined;
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
    { schema: { hide: true, response: { 200: deliveryAnswerSchema } } },
    async (request): Promise<DeliveryAnswer> => {
      const event = classifyDelivery(request.body);
      if (event.action === 'drop') {
        request.log.warn({ reason: event.reason }, LOG.eventDropped);
        return { status: 'DROP' };
      }
      if (event.notify && options.notifier !== undefined) {
        try {
          await options.notifier.notify(event.id, event.task);
        } catch (error) {
          request.log.warn(
            { code: isServiceError(error) ? error.code : 'internal', err: error, taskId: event.task.id },
            LOG.eventRetried,
          );
          return { status: 'RETRY' };
        }
      }
      request.log.info({ type: event.type, eventId: event.id, taskId: event.task.id }, LOG.eventHandled);
      return { status: 'SUCCESS' };
    },
  );
  done();
}
