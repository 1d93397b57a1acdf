import type { SwapPlan } from '../../src/api/contract.ts';
import type { V1Deployment } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { desiredChildren, type Manifest } from '../../src/controller/desired.ts';
import { COMPONENTS_HASH_ANNOTATION, MANAGED_BY_LABEL, RENDERED_HASH_ANNOTATION } from '../../src/controller/names.ts';
import type { DaprComponent } from '../../src/controller/resources/components.ts';
import { DEFAULT_BUILD_SETTINGS } from '../../src/controller/resources/deployment.ts';
import { taskApiFixture } from '../support/taskapi-fixtures.ts';

const plan = (component: string): SwapPlan => ({
  revision: 0,
  truth: { component, generation: '0' },
  mirror: null,
  fenced: false,
  fenceTimeoutMs: 10_000,
});
const onRedis = {
  podBackend: 'redis',
  podGeneration: '0',
  stateBackends: ['redis'],
  plan: plan('x-state-redis'),
} as const;
const render = (taskApi = taskApiFixture(), placement: Parameters<typeof desiredChildren>[1] = onRedis) =>
  desiredChildren(taskApi, placement, DEFAULT_BUILD_SETTINGS);
const find = (children: Manifest[], kind: string, name: string): Manifest => {
  const child = children.find((item) => item.kind === kind && item.metadata.name === name);
  if (!child)
    throw new Error(`no ${kind} ${name} among ${children.map((c) => `${c.kind}/${c.metadata.name}`).join(', ')}`);
  return child;
};
const deploymentNamed = (children: Manifest[], name: string) => find(children, 'Deployment', name) as V1Deployment;
const componentNamed = (children: Manifest[], name: string) => find(children, 'Component', name) as DaprComponent;
const env = (deployment: V1Deployment): Record<string, string | undefined> =>
  Object.fromEntries(deployment.spec?.template.spec?.containers[0]?.env?.map((item) => [item.name, item.value]) ?? []);

describe('desired children of a TaskApi', () => {
  it('are owned by the TaskApi, labelled as managed by the operator, and in its namespace', () => {
    for (const child of render()) {
      expect(child.metadata.namespace).toBe('team-a');
      expect(child.metadata.labels?.[MANAGED_BY_LABEL]).toBe('taskapi-operator');
      expect(child.metadata.ownerReferences).toEqual([
        expect.objectContaining({ kind: 'TaskApi', name: 'tasks', uid: 'uid-team-a-tasks', controller: true }),
      ]);
      expect(child.metadata.annotations?.[RENDERED_HASH_ANNOTATION]).toMatch(/^[0-9a-f]{16}$/);
    }
  });

  it('give the Deployment Dapr annotations, the component names by env var and a restricted security context', () => {
    const taskApi = taskApiFixture({
      dapr: { logLevel: 'debug', enableApiLogging: true, sidecarResources: { limits: { memory: '256Mi' } } },
      notifications: { appId: 'notifier', deploy: false },
    });
    const deployment = deploymentNamed(render(taskApi), 'tasks');
    const template = deployment.spec?.template;
    expect(template?.metadata?.annotations).toMatchObject({
      'dapr.io/enabled': 'true',
      'dapr.io/app-id': 'tasks',
      'dapr.io/app-port': '3000',
      'dapr.io/log-level': 'debug',
      'dapr.io/enable-api-logging': 'true',
      'dapr.io/sidecar-memory-limit': '256Mi',
      // Only the sidecar reaches the routes daprd calls; only the app reaches the sidecar's API.
      'dapr.io/app-token-secret': 'tasks-dapr-app-token',
      'dapr.io/api-token-secret': 'tasks-dapr-api-token',
      // A replaced pod's sidecar outlives the app's preStop pause and its in-flight requests.
      'dapr.io/block-shutdown-duration': '8s',
    });
    expect(template?.spec?.containers[0]?.lifecycle).toEqual({ preStop: { sleep: { seconds: 3 } } });
    expect(env(deployment)).toEqual({
      APP_PORT: '3000',
      STATE_STORE_NAME: 'tasks-state-redis',
      PUBSUB_NAME: 'tasks-pubsub',
      // A topic of its own: TaskApis sharing a Redis get none of each other's events.
      PUBSUB_TOPIC: 'team-a.tasks',
      SECRET_STORE_NAME: 'tasks-secrets',
      NOTIFICATION_APP_ID: 'notifier',
      STATE_STORE_GENERATION: '0',
      SWAP_PLAN_FILE: '/etc/taskapi/swap/plan.json',
      // From the Secrets the operator makes: the token it drives a swap with, and Dapr's two (the injector
      // gives them to daprd only).
      CONTROL_TOKEN: undefined,
      APP_API_TOKEN: undefined,
      DAPR_API_TOKEN: undefined,
    });
    const taskContainer = template?.spec?.containers[0];
    const fromSecret = (name: string) => taskContainer?.env?.find((item) => item.name === name)?.valueFrom;
    expect(fromSecret('CONTROL_TOKEN')).toEqual({ secretKeyRef: { name: 'tasks-swap-control', key: 'token' } });
    expect(fromSecret('APP_API_TOKEN')).toEqual({ secretKeyRef: { name: 'tasks-dapr-app-token', key: 'token' } });
    expect(fromSecret('DAPR_API_TOKEN')).toEqual({ secretKeyRef: { name: 'tasks-dapr-api-token', key: 'token' } });
    expect(taskContainer?.volumeMounts).toEqual([
      { name: 'swap-plan', mountPath: '/etc/taskapi/swap', readOnly: true },
    ]);
    expect(template?.spec?.volumes).toEqual([
      { name: 'swap-plan', configMap: { name: 'tasks-swap-plan', optional: true } },
    ]);
    const container = template?.spec?.containers[0];
    expect(container?.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(container?.readinessProbe?.httpGet?.path).toBe('/readyz');
  });

  it('name the state Component after its backend, scope every Component to the app-id, and reference credentials only', () => {
    const children = render(taskApiFixture(), { ...onRedis, stateBackends: ['redis', 'postgresql'] });
    const redis = componentNamed(children, 'tasks-state-redis');
    const postgresql = componentNamed(children, 'tasks-state-postgresql');
    expect(redis.spec.type).toBe('state.redis');
    expect(postgresql.spec.type).toBe('state.postgresql');
    // Keys carry the namespace: a TaskApi of the same name elsewhere on the same store sees none of them.
    expect(postgresql.spec.metadata).toEqual([
      { name: 'connectionString', secretKeyRef: { name: 'pg-auth', key: 'connectionString' } },
      { name: 'keyPrefix', value: 'namespace' },
    ]);
    expect(redis.spec.metadata).toContainEqual({ name: 'keyPrefix', value: 'namespace' });
    for (const component of children.filter((child): child is DaprComponent => child.kind === 'Component')) {
      expect(component.scopes).toEqual(['tasks']);
      const plainSecret = component.spec.metadata.find(
        (item) => /password|connectionString/i.test(item.name) && item.value !== undefined,
      );
      expect(plainSecret).toBeUndefined();
    }
    expect(redis.auth).toEqual({ secretStore: 'tasks-secrets' });
  });

  it('roll the pods (new pod template) when a Component they run with changes, and only then', () => {
    const hashOf = (children: Manifest[]) =>
      deploymentNamed(children, 'tasks').spec?.template.metadata?.annotations?.[COMPONENTS_HASH_ANNOTATION];
    const base = hashOf(render());
    expect(hashOf(render())).toBe(base);
    expect(hashOf(render(taskApiFixture({ replicas: 5 })))).toBe(base);
    expect(hashOf(render(taskApiFixture({ redis: { host: 'other-redis:6379' } })))).not.toBe(base);
    expect(
      hashOf(render(taskApiFixture(), { ...onRedis, podBackend: 'postgresql', stateBackends: ['postgresql'] })),
    ).not.toBe(base);
  });

  it('include the notification service only when the TaskApi asks for it', () => {
    const without = render(taskApiFixture({ notifications: { appId: 'notifier', deploy: false } }));
    expect(without.filter((child) => child.metadata.name === 'notifier')).toEqual([]);
    const withIt = render(taskApiFixture({ notifications: { appId: 'notifier', deploy: true } }));
    const deployment = deploymentNamed(withIt, 'notifier');
    expect(deployment.spec?.template.metadata?.annotations?.['dapr.io/app-id']).toBe('notifier');
    expect(find(withIt, 'Service', 'notifier').kind).toBe('Service');
  });

  it('render the overdue sweep as a cron input binding scoped to the app only when asked, and roll the pods for it', () => {
    expect(render().filter((child) => child.metadata.name === 'tasks-overdue-sweep')).toEqual([]);
    const children = render(taskApiFixture({ overdueSweep: { schedule: '@every 5m' } }));
    const sweep = componentNamed(children, 'tasks-overdue-sweep');
    expect(sweep.spec.type).toBe('bindings.cron');
    expect(sweep.scopes).toEqual(['tasks']);
    expect(Object.fromEntries(sweep.spec.metadata.map((item) => [item.name, item.value]))).toEqual({
      schedule: '@every 5m',
      direction: 'input',
      route: '/bindings/overdue-sweep',
    });
    const hashOf = (manifests: Manifest[]) =>
      deploymentNamed(manifests, 'tasks').spec?.template.metadata?.annotations?.[COMPONENTS_HASH_ANNOTATION];
    expect(hashOf(children)).not.toBe(hashOf(render()));
  });

  it('let the service account read exactly the referenced Secrets', () => {
    const taskApi = taskApiFixture({ apiTokenSecretRef: { name: 'api-token', key: 'token' } });
    const role = find(render(taskApi), 'Role', 'tasks-secret-reader') as Manifest & { rules: unknown[] };
    expect(role.rules).toEqual([
      {
        apiGroups: [''],
        resources: ['secrets'],
        resourceNames: ['api-token', 'pg-auth', 'redis-auth'],
        verbs: ['get'],
      },
    ]);
  });

  it('are deterministic: the same TaskApi renders the same hashes in every process and version', () => {
    // Pinned on purpose: a changed hash re-applies the child on every cluster after an upgrade (and a changed
    // Deployment restarts its pods). Update these only for a change meant to do that.
    const hashes = Object.fromEntries(
      render().map((child) => [
        `${child.kind}/${child.metadata.name}`,
        child.metadata.annotations?.[RENDERED_HASH_ANNOTATION],
      ]),
    );
    expect(hashes).toEqual({
      'ServiceAccount/tasks': 'e5b94f234879eeff',
      'Role/tasks-secret-reader': 'ded4c1a01b691d75',
      'RoleBinding/tasks-secret-reader': 'b0c8386b937b0b0d',
      'Component/tasks-secrets': '22fc5023ca46d4e4',
      'Component/tasks-state-redis': '755762aaf1b3443f',
      'Component/tasks-pubsub': '5a01aa80e3a577ef',
      'Subscription/tasks-task-events': '25959940018a2869',
      'ConfigMap/tasks-swap-plan': '11a349113660a5d2',
      'Deployment/tasks': '25982e04933376e2',
      'Service/tasks': '785ad5c280c46e70',
    });
  });
});
