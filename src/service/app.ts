/**
 * The task service as a Fastify plugin: zod validation and serialization,
 * OpenAPI, error handling, then the routes. It never listens (server.ts does),
 * so tests can run it on a listener of their own.
 */
import type { FastifyInstance } from 'fastify';
import { EventCounters } from './event-counters.ts';
import apiBase from './plugins/base.ts';
import type { EventPublisher, Notifier, Sidecar, TaskStore } from './ports.ts';
import eventRoutes from './routes/events.ts';
import healthRoutes from './routes/health.ts';
import taskRoutes from './routes/tasks.ts';
import type { StartupGate } from './startup.ts';

export interface TaskAppOptions {
  store: TaskStore;
  events: EventPublisher;
  notifier: Notifier | undefined;
  sidecar: Sidecar;
  gate: StartupGate;
  /** Components /readyz checks the sidecar has loaded. */
  components: string[];
}

export default async function taskApp(fastify: FastifyInstance, options: TaskAppOptions): Promise<void> {
  await fastify.register(apiBase, {
    title: 'Task service',
    description: 'Tasks on a Dapr state store; task.created, task.completed and task.deleted published on pub/sub.',
  });
  await fastify.register(healthRoutes, options);
  await fastify.register(taskRoutes, options);
  await fastify.register(eventRoutes, { ...options, counters: new EventCounters() });
}
