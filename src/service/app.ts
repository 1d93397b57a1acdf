/**
 * The task service as a Fastify plugin: zod validation and serialization,
 * OpenAPI, error handling, then the routes. It never listens (server.ts does),
 * so tests can run it on a listener of their own.
 */
import type { FastifyInstance } from 'fastify';
import { EventCounters } from './event-counters.ts';
import apiBase from './plugins/base.ts';
import type { DueReminders, EventPublisher, Notifier, Sidecar, TaskStore } from './ports.ts';
import eventRoutes from './routes/events.ts';
import healthRoutes from './routes/health.ts';
import jobRoutes from './routes/jobs.ts';
import sweepRoutes from './routes/sweep.ts';
import swapRoutes from './routes/swap.ts';
import taskRoutes from './routes/tasks.ts';
import type { LiveSettings } from './settings.ts';
import type { StartupGate } from './startup.ts';
import type { SwapStore } from './swap.ts';

export interface TaskAppOptions {
  store: TaskStore;
  events: EventPublisher;
  /** Due dates' reminders, on Dapr's Jobs API; they fire at the job route. */
  reminders: DueReminders;
  /** The live settings (settings.ts): the defaults when the TaskApi has no settings store. */
  settings: LiveSettings;
  notifier: Notifier | undefined;
  sidecar: Sidecar;
  gate: StartupGate;
  /** Whether an API token guards the writes (the token itself comes from the secret store once the sidecar is up). */
  secured: boolean;
  /** Components /readyz checks the sidecar has loaded. */
  components: string[];
  /** Dapr's app token, when the pod has one: the event route then takes only the sidecar's calls. */
  appToken?: string | undefined;
  /** With one, the operator can drive this pod through a swap of stores (routes/swap.ts). */
  swap?: { store: SwapStore; controlToken: string | undefined };
}

export default async function taskApp(fastify: FastifyInstance, options: TaskAppOptions): Promise<void> {
  await fastify.register(apiBase, {
    title: 'Task service',
    description:
      'Tasks on a Dapr state store; task.created, task.completed, task.deleted and task.due (a due date reached) published on pub/sub.',
  });
  await fastify.register(healthRoutes, options);
  await fastify.register(taskRoutes, options);
  await fastify.register(eventRoutes, { ...options, counters: new EventCounters() });
  await fastify.register(jobRoutes, options);
  await fastify.register(sweepRoutes, options);
  if (options.swap) {
    await fastify.register(swapRoutes, {
      swap: options.swap.store,
      sidecar: options.sidecar,
      controlToken: options.swap.controlToken,
    });
  }
}
