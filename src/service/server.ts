/**
 * Entry point of the task service (`node dist/service/server.js` once compiled): reads its
 * settings, connects one DaprClient for the process, listens, and opens the
 * task routes once the sidecar and its components are ready.
 */
import Fastify from 'fastify';
import taskApp from './app.ts';
import { taskServiceConfigFromEnv } from './config.ts';
import { createDaprClient, createDaprGrpcClient } from './dapr/client.ts';
import { daprDueReminders } from './dapr/jobs.ts';
import { daprEventPublisher, daprNotifier, daprSecrets, daprSidecar } from './dapr/messaging.ts';
import { readPlanFile } from './schemas/swap.ts';
import { steadyPlan, SwapStore } from './swap.ts';
import { LOG, loggerOptions } from './logging.ts';
import { serve, SERVE_WHILE_CLOSING } from './serve.ts';
import { LiveSettings } from './settings.ts';
import { openWhenReady, StartupGate } from './startup.ts';

const config = taskServiceConfigFromEnv(process.env);
// No line per request: at thousands of requests a second that is most of the CPU; failures are logged where handled.
const fastify = Fastify({
  logger: loggerOptions(config.logLevel, 'task-service'),
  disableRequestLogging: true,
  ...SERVE_WHILE_CLOSING,
});
const logger = fastify.log;
const client = createDaprClient(config.sidecar, logger);
const gate = new StartupGate();
const sidecar = daprSidecar(client);
const secrets = config.secretStore === undefined ? undefined : daprSecrets(client, config.secretStore);
// The plan of a swap under way when this pod starts (the operator's ConfigMap), else the one store of the env.
const initialPlan =
  (config.swapPlanFile === undefined ? undefined : readPlanFile(config.swapPlanFile)) ??
  steadyPlan(config.stateStore, config.stateGeneration);
const store = new SwapStore(client, initialPlan, logger);
// The Jobs API and configuration subscriptions are on daprd's gRPC API only.
const grpcClient = createDaprGrpcClient(config.sidecar, logger);
const reminders = daprDueReminders(grpcClient);
const settings = new LiveSettings();
const components = [
  config.stateStore,
  config.pubsub,
  ...(config.apiToken && config.secretStore ? [config.secretStore] : []),
  ...(config.settingsStore ? [config.settingsStore] : []),
  ...(config.overdueSweepBinding ? [config.overdueSweepBinding] : []),
];

logger.info(
  {
    stateStore: config.stateStore,
    pubsub: config.pubsub,
    topic: config.topic,
    notifications: config.notificationAppId,
  },
  LOG.starting,
);
await fastify.register(taskApp, {
  store,
  swap: { store, controlToken: config.controlToken },
  events: daprEventPublisher(client, config.pubsub, config.topic, config.eventSource),
  reminders,
  settings,
  notifier: config.notificationAppId === undefined ? undefined : daprNotifier(client, config.notificationAppId),
  sidecar,
  gate,
  secured: config.apiToken !== undefined,
  appToken: config.appToken,
  components,
});
if (config.swapPlanFile !== undefined) watchPlanFile(config.swapPlanFile);
await serve(fastify, config, logger, async () => {
  store.stop();
  await settings.stop();
  await Promise.all([client.stop(), grpcClient.stop()]);
});
const { settingsStore } = config;
// The live settings are read before the routes open: a read-only service never takes a write at start.
const prepare = settingsStore === undefined ? undefined : () => settings.follow(grpcClient, settingsStore, logger);
openWhenReady(
  gate,
  { sidecar, secrets, components, apiToken: config.apiToken, ...(prepare ? { prepare } : {}) },
  logger,
).catch((error: unknown) => {
  logger.fatal({ err: error }, LOG.startupFailed);
  process.exit(1);
});

/** Kubelet updates a mounted ConfigMap late (up to a minute): a fallback for a plan the operator could not push. */
function watchPlanFile(path: string): void {
  const timer = setInterval(() => {
    try {
      const plan = readPlanFile(path);
      if (plan && plan.revision > store.plan.revision) void store.apply(plan, false);
    } catch (error) {
      logger.warn({ err: error, path }, 'swap plan file unreadable; keeping the plan in force');
    }
  }, 2_000);
  timer.unref();
}
