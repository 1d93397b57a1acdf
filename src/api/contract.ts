/**
 * The contract between the operator and the task service, in one place both
 * sides import: the environment through which the service learns its Dapr
 * component names (never hosts or passwords), the route Dapr delivers task
 * events to, the events' types, and the notification service's method.
 */

/** Environment variables the operator sets on the task service's container. */
export const SERVICE_ENV = {
  appPort: 'APP_PORT',
  stateStore: 'STATE_STORE_NAME',
  pubsub: 'PUBSUB_NAME',
  topic: 'PUBSUB_TOPIC',
  secretStore: 'SECRET_STORE_NAME',
  notificationAppId: 'NOTIFICATION_APP_ID',
  apiTokenSecret: 'API_TOKEN_SECRET_NAME',
  apiTokenKey: 'API_TOKEN_SECRET_KEY',
} as const;

/** The route the task service serves task events on; the operator's Subscription sends them there. */
export const TASK_EVENTS_ROUTE = '/events/task';

/** The CloudEvent types the task service publishes on the TaskApi's topic. */
export const TASK_EVENT_TYPES = ['task.created', 'task.completed', 'task.deleted'] as const;
export type TaskEventType = (typeof TASK_EVENT_TYPES)[number];

/** The notification service's method (its route) that completed tasks are posted to, by Dapr service invocation. */
export const NOTIFICATIONS_METHOD = 'notifications';
