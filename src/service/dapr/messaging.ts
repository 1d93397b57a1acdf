/** EventPublisher, Notifier, Secrets and Sidecar on Dapr's pub/sub, invocation, secrets and metadata APIs. */
import { randomUUID } from 'node:crypto';
import { HttpMethod, type DaprClient } from '@dapr/dapr';
import { ServiceError } from '../errors.ts';
import { taskEvent } from '../events.ts';
import type { EventPublisher, Notifier, Secrets, Sidecar } from '../ports.ts';
import type { Notification, TaskEventType } from '../schemas/event.ts';
import type { Task } from '../schemas/task.ts';
import { callDapr } from './client.ts';

/** The notification service's method (its route) that completed tasks are posted to. */
export const NOTIFICATIONS_METHOD = 'notifications';

export class DaprEventPublisher implements EventPublisher {
  private readonly client: DaprClient;
  private readonly pubsub: string;
  private readonly topic: string;
  private readonly source: string;

  constructor(client: DaprClient, pubsub: string, topic: string, source: string) {
    this.client = client;
    this.pubsub = pubsub;
    this.topic = topic;
    this.source = source;
  }

  async publish(type: TaskEventType, task: Task): Promise<void> {
    // A whole CloudEvent, so subscribers see our type (task.completed) instead of Dapr's generic one.
    const event = taskEvent(type, task, this.source, randomUUID(), new Date());
    await callDapr(
      'publish',
      () => this.client.pubsub.publish(this.pubsub, this.topic, event, { contentType: 'application/cloudevents+json' }),
      'publish_failed',
    );
  }
}

export class DaprNotifier implements Notifier {
  private readonly client: DaprClient;
  private readonly appId: string;

  constructor(client: DaprClient, appId: string) {
    this.client = client;
    this.appId = appId;
  }

  async notify(eventId: string, task: Task): Promise<void> {
    const notification: Notification = { event_id: eventId, task };
    await callDapr(
      'invoke notification service',
      () => this.client.invoker.invoke(this.appId, NOTIFICATIONS_METHOD, HttpMethod.POST, notification),
      'invocation_failed',
    );
  }
}

export class DaprSecrets implements Secrets {
  private readonly client: DaprClient;
  private readonly storeName: string;

  constructor(client: DaprClient, storeName: string) {
    this.client = client;
    this.storeName = storeName;
  }

  async read(name: string, key: string): Promise<string> {
    const secret = await callDapr('secret get', () => this.client.secret.get(this.storeName, name));
    const value: unknown = (secret as Record<string, unknown>)[key];
    if (typeof value !== 'string') {
      throw new ServiceError('dapr_failed', `secret ${name} in ${this.storeName} has no key ${key}`);
    }
    return value;
  }
}

export class DaprSidecar implements Sidecar {
  private readonly client: DaprClient;

  constructor(client: DaprClient) {
    this.client = client;
  }

  async loadedComponents(): Promise<string[]> {
    const metadata = await callDapr('metadata', () => this.client.metadata.get(), 'sidecar_unavailable');
    return metadata.components.map((component) => component.name);
  }
}
