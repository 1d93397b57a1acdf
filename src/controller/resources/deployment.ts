/**
 * The Deployments of the task service and, when asked for, the notification
 * service: one image, two entry points, each with an injected Dapr sidecar.
 */
import type { V1Container, V1Deployment, V1EnvVar, V1ResourceRequirements, V1Volume } from '@kubernetes/client-node';
import { SERVICE_ENV } from '../../api/contract.ts';
import type { StateBackend, TaskApi } from '../../api/resource.ts';
import type { Resources } from '../../api/taskapi.ts';
import {
  COMPONENTS_HASH_ANNOTATION,
  names,
  ownedMetadata,
  selectorLabels,
  labelsFor,
  type ChildRole,
} from '../names.ts';
import { TOKEN_KEY, SWAP_PLAN_DIR, SWAP_PLAN_KEY } from './swap.ts';

/** What the builders need beyond the TaskApi; fixed per operator build, so builders stay pure. */
export interface BuildSettings {
  /** Container args starting the task service in the image. */
  taskServiceArgs: string[];
  /** Container args starting the notification service in the same image. */
  notificationServiceArgs: string[];
}

export const DEFAULT_BUILD_SETTINGS: BuildSettings = {
  taskServiceArgs: ['dist/service/server.js'],
  notificationServiceArgs: ['dist/service/notification-server.js'],
};

const HTTP_PORT_NAME = 'http';

/**
 * A pod being replaced (a rollout, a swap's last step) keeps serving while the
 * Service stops sending it new connections: Endpoints change asynchronously,
 * so the app gets SIGTERM only after this pause (a preStop sleep), and then
 * finishes what is in flight. daprd gets SIGTERM at once (the injector adds
 * no hook), so it holds its API up for the pause and the in-flight time
 * (`dapr.io/block-shutdown-duration`): without both, requests still routed to
 * the old pod were refused, or answered 503 by an app whose sidecar had gone.
 */
export const DRAIN_SECONDS = 3;
const SIDECAR_BLOCK_SHUTDOWN = `${DRAIN_SECONDS + 5}s`;

function resourceRequirements(resources: Resources | undefined): V1ResourceRequirements | undefined {
  if (!resources) return undefined;
  const list = (values: { cpu?: string | number; memory?: string | number } | undefined) =>
    values && Object.fromEntries(Object.entries(values).map(([name, value]) => [name, String(value)]));
  return { requests: list(resources.requests), limits: list(resources.limits) };
}

/** Dapr's sidecar injector annotations (dapr.io/*). */
function daprAnnotations(taskApi: TaskApi, appId: string): Record<string, string> {
  const { dapr, appPort } = taskApi.spec;
  const sidecar = dapr.sidecarResources;
  const resourceAnnotations: Record<string, string | number | undefined> = {
    'dapr.io/sidecar-cpu-request': sidecar?.requests?.cpu,
    'dapr.io/sidecar-memory-request': sidecar?.requests?.memory,
    'dapr.io/sidecar-cpu-limit': sidecar?.limits?.cpu,
    'dapr.io/sidecar-memory-limit': sidecar?.limits?.memory,
  };
  return {
    'dapr.io/enabled': 'true',
    'dapr.io/app-id': appId,
    'dapr.io/app-port': String(appPort),
    'dapr.io/app-protocol': 'http',
    'dapr.io/log-level': dapr.logLevel,
    'dapr.io/block-shutdown-duration': SIDECAR_BLOCK_SHUTDOWN,
    // daprd presents the app token to the app (which refuses the routes only daprd calls without it), and
    // takes calls to its own API only with the API token: no other pod can post events or drive the sidecar.
    'dapr.io/app-token-secret': names.daprAppToken(taskApi),
    'dapr.io/api-token-secret': names.daprApiToken(taskApi),
    'dapr.io/enable-api-logging': String(dapr.enableApiLogging),
    ...Object.fromEntries(
      Object.entries(resourceAnnotations)
        .filter(([, value]) => value !== undefined)
        .map(([name, value]) => [name, String(value)]),
    ),
  };
}

/** The app's side of Dapr's tokens: the injector gives them to daprd only. */
function daprTokenEnv(taskApi: TaskApi): V1EnvVar[] {
  return [
    { name: SERVICE_ENV.appToken, valueFrom: { secretKeyRef: { name: names.daprAppToken(taskApi), key: TOKEN_KEY } } },
    {
      name: SERVICE_ENV.daprApiToken,
      valueFrom: { secretKeyRef: { name: names.daprApiToken(taskApi), key: TOKEN_KEY } },
    },
  ];
}

/** Restricted Pod Security: non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp. */
const RESTRICTED_CONTAINER_SECURITY = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

function serviceContainer(
  taskApi: TaskApi,
  name: string,
  args: string[],
  env: Record<string, string>,
  extra: Pick<V1Container, 'env' | 'volumeMounts'> = {},
): V1Container {
  const { image, appPort, resources } = taskApi.spec;
  const probe = (path: string) => ({
    httpGet: { path, port: HTTP_PORT_NAME },
    periodSeconds: 10,
    timeoutSeconds: 2,
    failureThreshold: 3,
  });
  const requirements = resourceRequirements(resources);
  return {
    name,
    image,
    args,
    ports: [{ name: HTTP_PORT_NAME, containerPort: appPort, protocol: 'TCP' }],
    env: [
      { name: SERVICE_ENV.appPort, value: String(appPort) },
      ...Object.entries(env).map(([envName, value]) => ({ name: envName, value })),
      ...(extra.env ?? []),
    ],
    ...(extra.volumeMounts ? { volumeMounts: extra.volumeMounts } : {}),
    readinessProbe: probe('/readyz'),
    livenessProbe: probe('/healthz'),
    lifecycle: { preStop: { sleep: { seconds: DRAIN_SECONDS } } },
    ...(requirements ? { resources: requirements } : {}),
    securityContext: RESTRICTED_CONTAINER_SECURITY,
  };
}

function deployment(
  taskApi: TaskApi,
  name: string,
  role: ChildRole,
  replicas: number,
  container: V1Container,
  podAnnotations: Record<string, string>,
  serviceAccountName?: string,
  volumes?: V1Volume[],
): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: ownedMetadata(taskApi, name, role),
    spec: {
      replicas,
      selector: { matchLabels: selectorLabels(taskApi, role) },
      // Surge first: reads keep being served by old pods until new ones are ready.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: 0 } },
      template: {
        metadata: { labels: labelsFor(taskApi, role), annotations: podAnnotations },
        spec: {
          ...(serviceAccountName ? { serviceAccountName } : {}),
          securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [container],
          ...(volumes ? { volumes } : {}),
        },
      },
    },
  };
}

const SWAP_PLAN_VOLUME = 'swap-plan';

/**
 * The task service, running on `backend`'s state Component (in layout
 * `generation`). `componentsHash` (of the Components it runs with) goes in the
 * pod template, so a change rolls the pods. During a swap the pods follow the
 * plan in the mounted ConfigMap and the operator's calls instead, without a
 * rollout (docs/swap.md); the token for those calls comes from a Secret.
 */
export function buildTaskDeployment(
  taskApi: TaskApi,
  backend: StateBackend,
  componentsHash: string,
  settings: BuildSettings,
  generation = '0',
): V1Deployment {
  const { spec } = taskApi;
  const env: Record<string, string> = {
    [SERVICE_ENV.stateStore]: names.stateComponent(taskApi, backend),
    [SERVICE_ENV.stateGeneration]: generation,
    [SERVICE_ENV.swapPlanFile]: `${SWAP_PLAN_DIR}/${SWAP_PLAN_KEY}`,
    [SERVICE_ENV.pubsub]: names.pubsubComponent(taskApi),
    [SERVICE_ENV.topic]: names.topic(taskApi),
    [SERVICE_ENV.secretStore]: names.secretStoreComponent(taskApi),
    ...(spec.notifications ? { [SERVICE_ENV.notificationAppId]: spec.notifications.appId } : {}),
    ...(spec.settings ? { [SERVICE_ENV.settingsStore]: names.settingsComponent(taskApi) } : {}),
    ...(spec.overdueSweep ? { [SERVICE_ENV.overdueSweepBinding]: names.overdueSweepComponent(taskApi) } : {}),
    ...(spec.apiTokenSecretRef
      ? {
          [SERVICE_ENV.apiTokenSecret]: spec.apiTokenSecretRef.name,
          [SERVICE_ENV.apiTokenKey]: spec.apiTokenSecretRef.key,
        }
      : {}),
  };
  const appId = names.app(taskApi);
  return deployment(
    taskApi,
    appId,
    'task-service',
    spec.replicas,
    serviceContainer(taskApi, 'task-service', settings.taskServiceArgs, env, {
      env: [
        ...daprTokenEnv(taskApi),
        {
          name: SERVICE_ENV.controlToken,
          valueFrom: { secretKeyRef: { name: names.swapControl(taskApi), key: TOKEN_KEY } },
        },
      ],
      volumeMounts: [{ name: SWAP_PLAN_VOLUME, mountPath: SWAP_PLAN_DIR, readOnly: true }],
    }),
    { ...daprAnnotations(taskApi, appId), [COMPONENTS_HASH_ANNOTATION]: componentsHash },
    // Its own account: the secret store reads the TaskApi's Secrets with it (see rbac.ts).
    names.app(taskApi),
    // Optional: a pod starting before the operator wrote the plan runs on the env's store alone.
    [{ name: SWAP_PLAN_VOLUME, configMap: { name: names.swapPlan(taskApi), optional: true } }],
  );
}

/** The notification service, under spec.notifications.appId; undefined unless the TaskApi asks for it. */
export function buildNotificationDeployment(taskApi: TaskApi, settings: BuildSettings): V1Deployment | undefined {
  const notifications = taskApi.spec.notifications;
  if (!notifications?.deploy) return undefined;
  return deployment(
    taskApi,
    notifications.appId,
    'notification-service',
    1,
    serviceContainer(
      taskApi,
      'notification-service',
      settings.notificationServiceArgs,
      {},
      {
        env: daprTokenEnv(taskApi),
      },
    ),
    daprAnnotations(taskApi, notifications.appId),
  );
}
