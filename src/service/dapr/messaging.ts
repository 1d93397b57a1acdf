/** EventPublisher, Notifier, Secrets and Sidecar on Dapr's pub/sub, invocation, secrets and metadata APIs. */
import { randomUUID } from 'node:crypto';
import { HttpMethod, type DaprClient } from '@dapr/dapr';
import { NOTIFICATIONS_METHOD } from '../../api/contract.ts';
import { ServiceError } from '../errors.ts';
import { taskEvent } from '../events.ts';
import type { EventPublisher, Notifier, Secrets, Sidecar } from '../ports.ts';
import type { Notification } from '../schemas/event.ts';
import { callDapr } from './client.ts';

export function daprEventPublisher(client: DaprClient, pubsub: string, topic: string, source: string): EventPublisher {
  return {
    async publish(type, task, id = randomUUID()) {
      // A whole CloudEvent, so subscribers see our type (task.completed) instead of Dapr's generic one.
      const event = taskEvent(type, task, source, id, new Date());
      await callDapr(
        'publish',
        () => client.pubsub.publish(pubsub, topic, event, { contentType: 'application/cloudevents+json' }),
        'publish_failed',
      );
    },
  };
}

export function daprNotifier(client: DaprClient, appId: string): Notifier {
  return {
    async notify(eventId, task, reason) {
      const notification: Notification = { event_id: eventId, reason, task };
      await callDapr(
        'invoke notification service',
        () => client.invoker.invoke(appId, NOTIFICATIONS_METHOD, HttpMethod.POST, notification),
        'invocation_failed',
      );
    },
  };
}

export function daprSecrets(client: DaprClient, storeName: string): Secrets {
  return {
    async read(name, key) {
      const secret = await callDapr('secret get', () => client.secret.get(storeName, name));
      const value: unknown = (secret as Record<string, unknown>)[key];
      if (typeof value !== 'string') {
        throw new ServiceError('dapr_failed', `secret ${name} in ${storeName} has no key ${key}`);
      }
      return value;
    },
  };
}

export function daprSidecar(client: DaprClient): Sidecar {
  return {
    async loadedComponents() {
      const metadata = await callDapr('metadata', () => client.metadata.get(), 'sidecar_unavailable');
      return metadata.components.map((component) => component.name);
    },
  };
}
