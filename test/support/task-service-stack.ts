/**
 * A task service as a pod would run it, on the test bed: the operator's
 * builders render the TaskApi's Components, Subscription and Deployments; the
 * Components and Subscription go into daprd's resources folder, and the
 * service runs as a real process with the container's args and env, beside a
 * real daprd. With notifications, the notification service runs the same way
 * under its own app-id.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CommunicationProtocolEnum, DaprClient, LogLevel } from '@dapr/dapr';
import type { V1Deployment } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import type { StateBackend, TaskApi } from '../../src/api/resource.ts';
import type { Task, TaskPage } from '../../src/service/schemas/task.ts';
import {
  buildOverdueSweepComponent,
  buildPubsubComponent,
  buildSecretStoreComponent,
  buildSettingsComponent,
  buildStateComponent,
} from '../../src/controller/resources/components.ts';
import { SERVICE_ENV } from '../../src/api/contract.ts';
import {
  buildNotificationDeployment,
  buildTaskDeployment,
  DEFAULT_BUILD_SETTINGS,
} from '../../src/controller/resources/deployment.ts';
import { buildSubscription } from '../../src/controller/resources/subscription.ts';
import { startDaprd, type Daprd } from '../../testbed/harness/daprd.ts';
import { kubectlOk } from '../../testbed/harness/kubectl.ts';
import { freePort } from '../../testbed/harness/ports.ts';
import { ManagedProcess, waitUntil } from '../../testbed/harness/process.ts';
import type { TestbedInfo } from '../../testbed/harness/testbed.ts';
import type { JsonClient } from './http.ts';
import { taskApiFixture } from './taskapi-fixtures.ts';

/** Where the state store and pub/sub live: the test bed's servers, or a test's own. */
export interface Stores {
  redis: { address: string; password: string };
  postgres: { connectionString: string };
}

export interface StackOptions {
  /** TaskApi name: the app-id, namespace suffix and topic prefix, so stacks never share events or keys. */
  name: string;
  /** Dapr's scheduler for the Jobs API (due dates): the test bed's unless a test restarts one of its own. */
  schedulerAddress?: string;
  /** spec.overdueSweep.schedule: the cron binding is rendered and loaded. */
  overdueSweep?: string;
  /** spec.settings.store: a Redis (address) whose password is the stores' Redis password. */
  settingsStore?: string;
  backend: StateBackend;
  stores: Stores;
  apiToken?: string;
  notifications?: boolean;
  /**
   * Ready for a swap of stores: daprd loads both backends' state Components,
   * the service gets this operator control token, and `replicas` pods run.
   */
  swap?: { controlToken: string; replicas: number };
}

export interface RunningApp {
  url: string;
  daprd: Daprd;
  process: ManagedProcess;
}

export interface TaskServiceStack extends RunningApp {
  taskApi: TaskApi;
  /**
   * Dapr's tokens, as the Secrets the operator makes would hold them: daprd
   * presents `app` to the apps, and takes calls to its API only with `api`
   * (in the `dapr-api-token` header).
   */
  daprTokens: { app: string; api: string };
  /** Every task service replica (the first is the stack's own url). */
  replicas: RunningApp[];
  notifications: RunningApp | undefined;
  /**
   * A replica's container restarted (or a replacement pod on the same
   * sidecar): kills its service process if it still runs, starts it again on
   * the same daprd and port with `env` beside the container's, waits for
   * /readyz. `replicas[index]` (and `process`, for the first) is the new one.
   */
  restartReplica(index: number, env?: Record<string, string>): Promise<RunningApp>;
  stop(): Promise<void>;
}

const SECRETS = { redis: 'redis-auth', postgres: 'pg-auth', apiToken: 'api-token' };

async function createNamespace(testbed: TestbedInfo, namespace: string, options: StackOptions): Promise<void> {
  const k = (args: string[]) => kubectlOk(testbed.kubeconfig, args);
  await k(['create', 'namespace', namespace]);
  const secret = (name: string, key: string, value: string) =>
    k(['create', 'secret', 'generic', name, '-n', namespace, `--from-literal=${key}=${value}`]);
  await secret(SECRETS.redis, 'password', options.stores.redis.password);
  await secret(SECRETS.postgres, 'connectionString', options.stores.postgres.connectionString);
  if (options.apiToken !== undefined) await secret(SECRETS.apiToken, 'token', options.apiToken);
}

/** The Components and Subscription the operator renders, made loadable by a standalone daprd. */
function daprResources(taskApi: TaskApi, backends: StateBackend[], kubeconfig: string): object[] {
  const states = backends.map((backend) => {
    const state = buildStateComponent(taskApi, backend);
    if (!state) throw new Error(`the fixture has no settings for ${backend}`);
    return state;
  });
  const pubsub = buildPubsubComponent(taskApi);
  if (!pubsub) throw new Error('the fixture has no settings for pub/sub');
  const secretStore = buildSecretStoreComponent(taskApi);
  // In a pod the Kubernetes secret store uses the service account and the pod's namespace; here it needs both spelled out.
  secretStore.spec.metadata.push(
    { name: 'kubeconfigPath', value: kubeconfig },
    { name: 'defaultNamespace', value: taskApi.metadata.namespace },
  );
  const optional = [buildOverdueSweepComponent(taskApi), buildSettingsComponent(taskApi)].filter(
    (item) => item !== undefined,
  );
  return [secretStore, ...states, pubsub, ...optional, buildSubscription(taskApi)];
}

/** The container's env as a process environment; `overrides` for what differs on one host (ports). */
function containerEnv(deployment: V1Deployment, overrides: Record<string, string>): NodeJS.ProcessEnv {
  const container = deployment.spec?.template.spec?.containers[0];
  // Variables from Secrets (the swap's control token) are for kubelet to resolve: a stack sets its own.
  const env = Object.fromEntries(
    (container?.env ?? []).flatMap((variable) =>
      variable.value === undefined ? [] : [[variable.name, variable.value]],
    ),
  );
  // SERVICE_NODE_OPTIONS reaches the service's Node (a benchmark profiling it: --cpu-prof).
  const nodeOptions = process.env['SERVICE_NODE_OPTIONS'];
  return { PATH: process.env.PATH, ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}), ...env, ...overrides };
}

function containerArgs(deployment: V1Deployment): string[] {
  return deployment.spec?.template.spec?.containers[0]?.args ?? [];
}

interface AppSpec {
  appId: string;
  /** Env beside the container's (the swap's control token). */
  env?: Record<string, string>;
  /** Dapr's tokens: for daprd as the injector gives them, and for the app as its secretKeyRefs would. */
  daprTokens: { app: string; api: string };
  deployment: V1Deployment;
  resources: object[];
  port: number;
  dir: string;
  namespace: string;
  schedulerAddress: string;
}

/** daprd first (its ports go in the app's env, as the injector does), then the app, then wait for /readyz. */
async function startApp(spec: AppSpec): Promise<RunningApp> {
  // A folder of their own: daprd reads every file in it, and would take the logs beside them for manifests.
  const resourcesPath = join(spec.dir, 'resources');
  mkdirSync(resourcesPath, { recursive: true });
  writeFileSync(
    join(resourcesPath, 'resources.yaml'),
    spec.resources.map((manifest) => stringify(manifest)).join('---\n'),
  );
  const daprd = await startDaprd({
    appId: spec.appId,
    resourcesPath,
    logDir: spec.dir,
    appPort: spec.port,
    schedulerAddress: spec.schedulerAddress,
    env: {
      NAMESPACE: spec.namespace,
      [SERVICE_ENV.appToken]: spec.daprTokens.app,
      [SERVICE_ENV.daprApiToken]: spec.daprTokens.api,
    },
  });
  return startAppProcess(spec, daprd);
}

/** The app's process beside a running daprd, ready. */
async function startAppProcess(spec: AppSpec, daprd: Daprd): Promise<RunningApp> {
  const child = ManagedProcess.start({
    name: spec.appId,
    command: process.execPath,
    args: containerArgs(spec.deployment),
    logDir: spec.dir,
    env: containerEnv(spec.deployment, {
      [SERVICE_ENV.appPort]: String(spec.port),
      DAPR_HTTP_PORT: String(daprd.httpPort),
      DAPR_GRPC_PORT: String(daprd.grpcPort),
      APP_ID: spec.appId,
      HOST: '127.0.0.1',
      [SERVICE_ENV.appToken]: spec.daprTokens.app,
      [SERVICE_ENV.daprApiToken]: spec.daprTokens.api,
      ...spec.env,
    }),
  });
  const url = `http://127.0.0.1:${spec.port}`;
  await waitUntil(async () => (await fetch(`${url}/readyz`)).ok, {
    what: `${spec.appId} to become ready`,
    timeoutMs: 60_000,
    watch: [child, daprd.process],
  });
  return { url, daprd, process: child };
}

export async function startTaskServiceStack(testbed: TestbedInfo, options: StackOptions): Promise<TaskServiceStack> {
  const namespace = `dapr-${options.name}`;
  await createNamespace(testbed, namespace, options);
  const port = await freePort();
  const taskApi = taskApiFixture(
    {
      appPort: port,
      stateBackend: options.backend,
      redis: {
        host: options.stores.redis.address,
        passwordSecretRef: { name: SECRETS.redis, key: 'password' },
      },
      postgresql: { connectionStringSecretRef: { name: SECRETS.postgres, key: 'connectionString' } },
      pubsub: { topic: `${options.name}-tasks` },
      ...(options.notifications ? { notifications: { appId: `${options.name}-notify`, deploy: true } } : {}),
      ...(options.apiToken !== undefined ? { apiTokenSecretRef: { name: SECRETS.apiToken, key: 'token' } } : {}),
      ...(options.overdueSweep !== undefined ? { overdueSweep: { schedule: options.overdueSweep } } : {}),
      ...(options.settingsStore !== undefined
        ? {
            settings: {
              store: { host: options.settingsStore, passwordSecretRef: { name: SECRETS.redis, key: 'password' } },
            },
          }
        : {}),
    },
    options.name,
    namespace,
  );
  const dir = join(testbed.dir, 'dapr', options.name);
  const daprTokens = { app: randomBytes(24).toString('hex'), api: randomBytes(24).toString('hex') };
  const schedulerAddress = options.schedulerAddress ?? testbed.scheduler.address;
  const started: RunningApp[] = [];
  const stop = async (): Promise<void> => {
    for (const app of started.reverse()) {
      await app.process.stop();
      await app.daprd.stop();
    }
  };
  try {
    const notificationDeployment = buildNotificationDeployment(taskApi, DEFAULT_BUILD_SETTINGS);
    const notifications =
      notificationDeployment &&
      (await startApp({
        appId: `${options.name}-notify`,
        deployment: notificationDeployment,
        resources: [],
        port: await freePort(),
        dir: join(dir, 'notifications'),
        namespace,
        daprTokens,
        schedulerAddress,
      }));
    if (notifications) started.push(notifications);
    const backends: StateBackend[] = options.swap ? ['redis', 'postgresql'] : [options.backend];
    const replicas: RunningApp[] = [];
    const specs: AppSpec[] = [];
    for (let replica = 0; replica < (options.swap?.replicas ?? 1); replica++) {
      const spec: AppSpec = {
        appId: taskApi.metadata.name,
        deployment: buildTaskDeployment(taskApi, options.backend, 'test', DEFAULT_BUILD_SETTINGS),
        resources: daprResources(taskApi, backends, testbed.kubeconfig),
        port: replica === 0 ? port : await freePort(),
        dir: join(dir, replica === 0 ? 'service' : `service-${replica}`),
        namespace,
        daprTokens,
        schedulerAddress,
        ...(options.swap ? { env: { [SERVICE_ENV.controlToken]: options.swap.controlToken } } : {}),
      };
      const service = await startApp(spec);
      started.push(service);
      replicas.push(service);
      specs.push(spec);
    }
    const restartReplica = async (index: number, env: Record<string, string> = {}): Promise<RunningApp> => {
      const old = replicas[index];
      const spec = specs[index];
      if (!old || !spec) throw new Error(`the stack has no replica ${index}`);
      old.process.kill('SIGKILL');
      await old.process.exited;
      const fresh = await startAppProcess({ ...spec, env: { ...spec.env, ...env } }, old.daprd);
      replicas[index] = fresh;
      started[started.indexOf(old)] = fresh;
      return fresh;
    };
    const [service] = replicas as [RunningApp];
    return {
      ...service,
      get process() {
        return (replicas[0] as RunningApp).process;
      },
      taskApi,
      daprTokens,
      replicas,
      notifications,
      restartReplica,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Every task GET /tasks lists (so every id in the service's index), following next_cursor. */
export async function allTasks(api: JsonClient, limit: number, status?: string): Promise<Task[]> {
  const tasks: Task[] = [];
  let cursor: string | null = null;
  do {
    const query = new URLSearchParams({ limit: String(limit) });
    if (cursor !== null) query.set('cursor', cursor);
    if (status !== undefined) query.set('status', status);
    const page = await api.request<TaskPage>('GET', `/tasks?${query.toString()}`);
    if (page.status !== 200) throw new Error(`GET /tasks answered ${page.status}`);
    tasks.push(...page.body.items);
    cursor = page.body.next_cursor;
  } while (cursor !== null);
  return tasks;
}

/**
 * An SDK client of the stack's own daprd (HTTP, with its API token), for tests
 * that work the stores below the service. Quiet: the refused writes such tests
 * provoke would only fill the log with the SDK's error lines.
 */
export function sidecarClient(stack: TaskServiceStack): DaprClient {
  const quiet = (): void => undefined;
  return new DaprClient({
    daprHost: '127.0.0.1',
    daprPort: String(stack.daprd.httpPort),
    daprApiToken: stack.daprTokens.api,
    communicationProtocol: CommunicationProtocolEnum.HTTP,
    logger: {
      level: LogLevel.Error,
      service: { error: quiet, warn: quiet, info: quiet, verbose: quiet, debug: quiet },
    },
  });
}
