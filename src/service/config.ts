/**
 * The task service's settings, from the environment the operator sets
 * (SERVICE_ENV in src/api/contract.ts). It learns component
 * names, never hosts or passwords. A bad value stops start-up with the variable named.
 */
import { z } from 'zod';
import { SERVICE_ENV } from '../api/contract.ts';

const name = z.string().min(1);
const port = (fallback: number) => z.coerce.number().int().min(1).max(65535).default(fallback);
const appToken = z.string().min(16, 'at least 16 characters').optional();
const logLevel = z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info');

const taskServiceEnvSchema = z
  .object({
    [SERVICE_ENV.appPort]: port(3000),
    [SERVICE_ENV.stateStore]: name,
    [SERVICE_ENV.stateGeneration]: z
      .string()
      .regex(/^(0|g\d{1,9})$/, 'a store layout generation: 0 or g<n>')
      .default('0'),
    [SERVICE_ENV.pubsub]: name,
    [SERVICE_ENV.topic]: name.default('tasks'),
    [SERVICE_ENV.secretStore]: name.optional(),
    [SERVICE_ENV.notificationAppId]: name.optional(),
    [SERVICE_ENV.apiTokenSecret]: name.optional(),
    [SERVICE_ENV.apiTokenKey]: name.optional(),
    [SERVICE_ENV.swapPlanFile]: name.optional(),
    [SERVICE_ENV.controlToken]: z.string().min(16).optional(),
    [SERVICE_ENV.appToken]: appToken,
    [SERVICE_ENV.settingsStore]: name.optional(),
    [SERVICE_ENV.overdueSweepBinding]: name.optional(),
    // Set by Dapr's sidecar injector (and by the test harness in standalone mode).
    DAPR_HTTP_PORT: port(3500),
    DAPR_GRPC_PORT: port(50001),
    DAPR_HOST: z.string().default('127.0.0.1'),
    APP_ID: z.string().optional(),
    HOST: z.string().default('0.0.0.0'),
    LOG_LEVEL: logLevel,
  })
  .refine((env) => (env[SERVICE_ENV.apiTokenSecret] === undefined) === (env[SERVICE_ENV.apiTokenKey] === undefined), {
    message: `${SERVICE_ENV.apiTokenSecret} and ${SERVICE_ENV.apiTokenKey} are set together or not at all`,
    path: [SERVICE_ENV.apiTokenKey],
  })
  .refine((env) => env[SERVICE_ENV.apiTokenSecret] === undefined || env[SERVICE_ENV.secretStore] !== undefined, {
    message: `${SERVICE_ENV.secretStore} is needed to read the API token`,
    path: [SERVICE_ENV.secretStore],
  });

export interface SidecarAddress {
  host: string;
  httpPort: number;
  /** daprd's gRPC API: the Jobs API is there only (src/service/dapr/jobs.ts). */
  grpcPort: number;
}

export interface ListenSettings {
  port: number;
  host: string;
  logLevel: string;
}

export interface TaskServiceConfig extends ListenSettings {
  sidecar: SidecarAddress;
  stateStore: string;
  /** The layout generation of the tasks in it (src/service/task-index.ts). */
  stateGeneration: string;
  pubsub: string;
  topic: string;
  secretStore: string | undefined;
  notificationAppId: string | undefined;
  apiToken: { secretName: string; key: string } | undefined;
  /** Where the plan of a swap of stores is mounted (src/service/swap.ts). */
  swapPlanFile: string | undefined;
  /** The operator's token for the swap control route; undefined: nobody can drive a swap in this pod. */
  controlToken: string | undefined;
  /** Dapr's app token: only a caller presenting it (the sidecar) reaches the routes daprd calls. */
  appToken: string | undefined;
  /** CloudEvent source of the events this service publishes. */
  eventSource: string;
  /** The configuration store Component live settings come from (settings.ts); undefined: the defaults. */
  settingsStore: string | undefined;
  /** The overdue sweep's cron binding, when the TaskApi has one: readiness waits for it. */
  overdueSweepBinding: string | undefined;
}

function parseEnv<T extends z.ZodType>(schema: T, env: NodeJS.ProcessEnv, what: string): z.infer<T> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ');
    throw new Error(`invalid ${what} settings: ${problems}`);
  }
  return parsed.data;
}

export function taskServiceConfigFromEnv(env: NodeJS.ProcessEnv): TaskServiceConfig {
  const e = parseEnv(taskServiceEnvSchema, env, 'task service');
  const secretName = e[SERVICE_ENV.apiTokenSecret];
  const key = e[SERVICE_ENV.apiTokenKey];
  return {
    port: e[SERVICE_ENV.appPort],
    host: e.HOST,
    logLevel: e.LOG_LEVEL,
    sidecar: { host: e.DAPR_HOST, httpPort: e.DAPR_HTTP_PORT, grpcPort: e.DAPR_GRPC_PORT },
    stateStore: e[SERVICE_ENV.stateStore],
    stateGeneration: e[SERVICE_ENV.stateGeneration],
    pubsub: e[SERVICE_ENV.pubsub],
    topic: e[SERVICE_ENV.topic],
    secretStore: e[SERVICE_ENV.secretStore],
    notificationAppId: e[SERVICE_ENV.notificationAppId],
    apiToken: secretName !== undefined && key !== undefined ? { secretName, key } : undefined,
    swapPlanFile: e[SERVICE_ENV.swapPlanFile],
    controlToken: e[SERVICE_ENV.controlToken],
    appToken: e[SERVICE_ENV.appToken],
    eventSource: e.APP_ID ?? 'taskapi',
    settingsStore: e[SERVICE_ENV.settingsStore],
    overdueSweepBinding: e[SERVICE_ENV.overdueSweepBinding],
  };
}

const notificationEnvSchema = z.object({
  [SERVICE_ENV.appPort]: port(3000),
  [SERVICE_ENV.appToken]: appToken,
  HOST: z.string().default('0.0.0.0'),
  LOG_LEVEL: logLevel,
});

export interface NotificationServiceConfig extends ListenSettings {
  /** Dapr's app token: only the sidecar (presenting it) may post notifications. */
  appToken: string | undefined;
}

export function notificationServiceConfigFromEnv(env: NodeJS.ProcessEnv): NotificationServiceConfig {
  const e = parseEnv(notificationEnvSchema, env, 'notification service');
  return { port: e[SERVICE_ENV.appPort], host: e.HOST, logLevel: e.LOG_LEVEL, appToken: e[SERVICE_ENV.appToken] };
}
