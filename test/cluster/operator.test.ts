/**
 * The operator against the real test bed: kube-apiserver + etcd, controller-manager
 * (garbage collector, deployments), scheduler and kwok. Everything is driven with
 * kubectl, as a user would. One file: two operators in one cluster would fight.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { kubectl, kubectlOk, stateBackendPatch, taskApiEvents } from '../../testbed/harness/kubectl.ts';
import { startOperator, type RunningOperator } from '../../testbed/harness/operator.ts';
import { waitUntil } from '../../testbed/harness/process.ts';
import type { SwapPlan } from '../../src/api/contract.ts';
import type { StateBackend, TaskApi } from '../../src/api/resource.ts';
import type { TaskApiStatus } from '../../src/api/taskapi.ts';
import { applyStatusOnto, operatorClient, readTaskApi, StaleStatus } from '../../src/controller/taskapi-client.ts';
import { loadConnection } from '../../src/kube/kubeconfig.ts';

const { kubeconfig, nodeName, dir } = inject('testbed');
const logDir = join(dir, 'operators');
const k = (args: string[], input?: string) => kubectlOk(kubeconfig, args, input);
const json = async <T>(args: string[]): Promise<T> => JSON.parse(await k([...args, '-o', 'json'])) as T;

const REDIS_PASSWORD = 'dev-redis-password';
const POSTGRES_CONNECTION = 'host=postgresql port=5432 user=postgres password=dev-postgres-password dbname=tasks';

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}
interface TaskApiObject {
  metadata: { name: string; generation: number };
  status?: {
    stateBackend?: string;
    observedGeneration?: number;
    readyReplicas?: number;
    replicaSummary?: string;
    swap?: { phase: string };
    conditions?: Condition[];
  };
}
const condition = (taskApi: TaskApiObject, type: string) => taskApi.status?.conditions?.find((c) => c.type === type);

function taskApiManifest(name: string, namespace: string, spec: Record<string, unknown> = {}): string {
  return stringify({
    apiVersion: 'taskapi.dev/v1alpha1',
    kind: 'TaskApi',
    metadata: { name, namespace },
    spec: {
      image: 'registry.example/taskapi:1',
      redis: { host: 'redis:6379', passwordSecretRef: { name: 'taskapi-redis', key: 'password' } },
      postgresql: { connectionStringSecretRef: { name: 'taskapi-postgresql', key: 'connectionString' } },
      ...spec,
    },
  });
}

async function createNamespaceWithSecrets(namespace: string): Promise<void> {
  await k(['create', 'namespace', namespace]);
  await k([
    'create',
    'secret',
    'generic',
    'taskapi-redis',
    '-n',
    namespace,
    `--from-literal=password=${REDIS_PASSWORD}`,
  ]);
  await k([
    'create',
    'secret',
    'generic',
    'taskapi-postgresql',
    '-n',
    namespace,
    `--from-literal=connectionString=${POSTGRES_CONNECTION}`,
  ]);
}

/** The one field edit a user makes to move a TaskApi to another state store. */
const switchBackend = (name: string, namespace: string, backend: string) =>
  k(stateBackendPatch(name, namespace, backend));

const waitReady = (name: string, namespace: string) =>
  k(['wait', '--for=condition=Ready', `taskapi/${name}`, '-n', namespace, '--timeout=60s']);

let operator: RunningOperator | undefined;

beforeAll(async () => {
  await k(['apply', '--server-side', '-f', 'crds/taskapi.dev_taskapis.yaml']);
  await k(['wait', '--for=condition=Established', 'crd/taskapis.taskapi.dev', '--timeout=30s']);
  operator = await startOperator({ kubeconfig, logDir, env: { OPERATOR_RESYNC_SECONDS: '2' } });
});
afterAll(async () => {
  await operator?.stop();
});
const running = (): RunningOperator => {
  if (!operator) throw new Error('the operator did not start');
  return operator;
};

describe('a TaskApi applied with kubectl', () => {
  const namespace = 'op-sample';
  beforeAll(async () => {
    await k(['create', 'namespace', namespace]);
    await k(['apply', '-k', 'config/samples', '-n', namespace]);
    await waitReady('tasks', namespace);
  });

  it('becomes Ready: kubectl get taskapis shows BACKEND redis, READY True and the replica count', async () => {
    const table = await k(['get', 'taskapis', '-n', namespace]);
    expect(table).toMatch(/^NAME\s+BACKEND\s+READY\s+REPLICAS\s+AGE\s*$/m);
    expect(table).toMatch(/^tasks\s+redis\s+True\s+2\/2\s+\S+\s*$/m);
    const wide = await k(['get', 'taskapis', '-n', namespace, '-o', 'wide']);
    expect(wide).toMatch(/SWAP\s+COPIED\s+MESSAGE/);
  });

  it('creates every child with the expected fields, and the pods run on the kwok node', async () => {
    const names = (
      await k([
        'get',
        'deployments,services,serviceaccounts,roles,rolebindings,configmaps,secrets,components.dapr.io,subscriptions.dapr.io',
        '-n',
        namespace,
        '-l',
        'app.kubernetes.io/managed-by=taskapi-operator',
        '-o',
        'name',
      ])
    )
      .trim()
      .split('\n')
      .sort();
    expect(names).toEqual([
      'component.dapr.io/tasks-pubsub',
      'component.dapr.io/tasks-secrets',
      'component.dapr.io/tasks-state-redis',
      'configmap/tasks-swap-plan',
      'deployment.apps/tasks',
      'deployment.apps/tasks-notifications',
      'role.rbac.authorization.k8s.io/tasks-secret-reader',
      'rolebinding.rbac.authorization.k8s.io/tasks-secret-reader',
      'secret/tasks-dapr-api-token',
      'secret/tasks-dapr-app-token',
      'secret/tasks-swap-control',
      'service/tasks',
      'service/tasks-notifications',
      'serviceaccount/tasks',
      'subscription.dapr.io/tasks-task-events',
    ]);
    const deployment = await json<{ spec: { template: { metadata: { annotations: Record<string, string> } } } }>([
      'get',
      'deployment',
      'tasks',
      '-n',
      namespace,
    ]);
    expect(deployment.spec.template.metadata.annotations).toMatchObject({
      'dapr.io/enabled': 'true',
      'dapr.io/app-id': 'tasks',
      'dapr.io/app-port': '3000',
    });
    const state = await json<{ spec: { type: string; metadata: unknown[] }; scopes: string[]; auth: unknown }>([
      'get',
      'component.dapr.io/tasks-state-redis',
      '-n',
      namespace,
    ]);
    expect(state.spec.type).toBe('state.redis');
    expect(state.scopes).toEqual(['tasks']);
    expect(state.spec.metadata).toContainEqual({
      name: 'redisPassword',
      secretKeyRef: { name: 'taskapi-redis', key: 'password' },
    });
    expect(state.auth).toEqual({ secretStore: 'tasks-secrets' });
    const subscription = await json<{ spec: { routes: { default: string }; pubsubname: string } }>([
      'get',
      'subscriptions.v2alpha1.dapr.io/tasks-task-events',
      '-n',
      namespace,
    ]);
    expect(subscription.spec).toMatchObject({ pubsubname: 'tasks-pubsub', routes: { default: '/events/task' } });
    const pods = await k([
      'get',
      'pods',
      '-n',
      namespace,
      '-l',
      'app.kubernetes.io/component=task-service',
      '-o',
      'jsonpath={range .items[*]}{.spec.nodeName} {.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
    ]);
    expect(pods.trim().split('\n')).toEqual([`${nodeName} True`, `${nodeName} True`]);
  });

  it('starts a swap with one field edit, keeping Redis the truth while it cannot reach the pods (kwok pretends), and goes back to Redis alone when the edit is undone', async () => {
    const template = await k(['get', 'deployment', 'tasks', '-n', namespace, '-o', 'jsonpath={.spec.template}']);
    await switchBackend('tasks', namespace, 'postgresql');
    // The real swap, with pods that answer, is test/e2e/chain.test.ts; here the pods are kwok's, on loopback
    // addresses nothing listens on, so the swap waits at its first phase and says why.
    let waiting: TaskApiObject | undefined;
    await waitUntil(
      async () => {
        const taskApi = await json<TaskApiObject>(['get', 'taskapi', 'tasks', '-n', namespace]);
        if (taskApi.status?.swap?.phase !== 'TargetAdded' || condition(taskApi, 'Degraded')?.reason !== 'SwapBlocked') {
          return false;
        }
        waiting = taskApi;
        return true;
      },
      { what: 'the swap to wait for the pods it cannot reach', timeoutMs: 30_000 },
    );
    if (!waiting) throw new Error('unreachable: waitUntil returned');
    expect(condition(waiting, 'Degraded')?.message).toMatch(
      /swap from redis to postgresql, TargetAdded: pod tasks-\S+ unreachable/,
    );
    expect(condition(waiting, 'Progressing')).toMatchObject({ status: 'True', reason: 'Migrating' });
    expect(condition(waiting, 'Progressing')?.message).toContain('phase TargetAdded');
    expect(condition(waiting, 'Ready')?.status).toBe('True');
    expect(waiting.status?.stateBackend).toBe('redis');
    const components = await k(['get', 'components.dapr.io', '-n', namespace, '-o', 'name']);
    expect(components).toContain('tasks-state-redis');
    expect(components).toContain('tasks-state-postgresql');
    // The pods follow the plan in the ConfigMap and the operator's calls: no rollout during a swap.
    expect(await k(['get', 'deployment', 'tasks', '-n', namespace, '-o', 'jsonpath={.spec.template}'])).toBe(template);
    expect(await k(['get', 'taskapis', '-n', namespace, '-o', 'wide'])).toMatch(
      /^NAME\s+BACKEND\s+READY\s+REPLICAS\s+AGE\s+SWAP\s+COPIED\s+MESSAGE\n(?:.*\n)*tasks\s+redis\s+True\s+2\/2\s+\S+\s+TargetAdded\s+0\/0\s/m,
    );

    await switchBackend('tasks', namespace, 'redis');
    await waitUntil(
      async () => {
        const taskApi = await json<TaskApiObject>(['get', 'taskapi', 'tasks', '-n', namespace]);
        const gone = !(await k(['get', 'components.dapr.io', '-n', namespace, '-o', 'name'])).includes(
          'tasks-state-postgresql',
        );
        return (
          gone &&
          taskApi.status?.swap?.phase === 'Completed' &&
          condition(taskApi, 'Degraded')?.status === 'False' &&
          condition(taskApi, 'Progressing')?.reason === 'Complete'
        );
      },
      { what: 'the swap to be undone', timeoutMs: 30_000 },
    );
    const back = await json<TaskApiObject>(['get', 'taskapi', 'tasks', '-n', namespace]);
    expect(back.status?.stateBackend).toBe('redis');
    expect(await k(['get', 'deployment', 'tasks', '-n', namespace, '-o', 'jsonpath={.spec.template}'])).toBe(template);
    const plan = JSON.parse(
      await k(['get', 'configmap', 'tasks-swap-plan', '-n', namespace, '-o', 'jsonpath={.data.plan\\.json}']),
    ) as SwapPlan;
    expect(plan).toMatchObject({
      truth: { component: 'tasks-state-redis', generation: '0' },
      mirror: null,
      fenced: false,
    });
    const events = await taskApiEvents(kubeconfig, namespace, 'jsonpath={range .items[*]}{.reason}{"\\n"}{end}');
    expect(events).toContain('SwapStarted');
    expect(events).toContain('SwapBlocked');
    expect(events).toContain('SwapReverted');
    expect(events).toContain('SwapCompleted');
  });

  it('writes nothing on a resync when nothing changed', async () => {
    const before = await running().counter('taskapi_operator_api_writes_total');
    const reconcilesBefore = await running().counter('controller_runtime_reconcile_total');
    // The test operator resyncs every 2 s: wait for at least two resyncs.
    await waitUntil(
      async () => (await running().counter('controller_runtime_reconcile_total')) >= reconcilesBefore + 2,
      {
        what: 'two resync passes',
        timeoutMs: 20_000,
      },
    );
    expect(await running().counter('taskapi_operator_api_writes_total')).toBe(before);
  });

  it('never puts a Secret value in its logs, Events or status', async () => {
    const everything = [
      readFileSync(running().process.logFile, 'utf8'),
      await k(['get', 'events', '-n', namespace, '-o', 'yaml']),
      await k(['get', 'taskapis', '-n', namespace, '-o', 'yaml']),
    ].join('\n');
    expect(everything).not.toContain(REDIS_PASSWORD);
    expect(everything).not.toContain('dev-postgres-password');
  });
});

describe('drift and deletion', () => {
  const namespace = 'op-drift';
  beforeAll(async () => {
    await createNamespaceWithSecrets(namespace);
    await k(['apply', '-f', '-'], taskApiManifest('drifty', namespace));
    await waitReady('drifty', namespace);
  });

  it('restores a child deleted by hand', async () => {
    const uid = await k(['get', 'service', 'drifty', '-n', namespace, '-o', 'jsonpath={.metadata.uid}']);
    await k(['delete', 'service', 'drifty', '-n', namespace]);
    await k(['delete', 'component.dapr.io/drifty-pubsub', '-n', namespace]);
    await waitUntil(
      async () => {
        const result = await kubectl(kubeconfig, [
          'get',
          'service/drifty',
          'component.dapr.io/drifty-pubsub',
          '-n',
          namespace,
          '-o',
          'jsonpath={.items[0].metadata.uid}',
        ]);
        return result.exitCode === 0 && result.stdout !== '' && result.stdout !== uid;
      },
      { what: 'the Service and Component to come back', timeoutMs: 20_000 },
    );
  });

  it('restores a field edited by hand', async () => {
    await k(['scale', 'deployment', 'drifty', '-n', namespace, '--replicas=4']);
    await k([
      'patch',
      'component.dapr.io/drifty-state-redis',
      '-n',
      namespace,
      '--type',
      'merge',
      '-p',
      '{"scopes":["intruder"]}',
    ]);
    await waitUntil(
      async () =>
        (await k(['get', 'deployment', 'drifty', '-n', namespace, '-o', 'jsonpath={.spec.replicas}'])) === '1' &&
        (await k(['get', 'component.dapr.io/drifty-state-redis', '-n', namespace, '-o', 'jsonpath={.scopes}'])) ===
          '["drifty"]',
      { what: 'the replicas and scopes to be restored', timeoutMs: 20_000 },
    );
  });

  it('has its children garbage-collected when the TaskApi is deleted', async () => {
    await k(['delete', 'taskapi', 'drifty', '-n', namespace]);
    await waitUntil(
      async () =>
        (
          await k([
            'get',
            'deployments,services,components.dapr.io,subscriptions.dapr.io,roles',
            '-n',
            namespace,
            '-l',
            'app.kubernetes.io/instance=drifty',
            '-o',
            'name',
          ])
        ).trim() === '',
      { what: 'the garbage collector to delete every child', timeoutMs: 60_000 },
    );
  });
});

describe('Secrets', () => {
  const namespace = 'op-secrets';
  beforeAll(async () => {
    await k(['create', 'namespace', namespace]);
  });

  it('reports Degraded naming the missing Secret, and recovers when it appears', async () => {
    await k(['apply', '-f', '-'], taskApiManifest('waiting', namespace));
    await waitUntil(
      async () => {
        const taskApi = await json<TaskApiObject>(['get', 'taskapi', 'waiting', '-n', namespace]);
        const degraded = condition(taskApi, 'Degraded');
        return degraded?.status === 'True' && degraded.message.includes('Secret "taskapi-redis"');
      },
      { what: 'Degraded naming the Secret', timeoutMs: 20_000 },
    );
    const taskApi = await json<TaskApiObject>(['get', 'taskapi', 'waiting', '-n', namespace]);
    expect(condition(taskApi, 'Ready')).toMatchObject({ status: 'False', reason: 'SecretMissing' });
    const deployments = await kubectl(kubeconfig, ['get', 'deployment', 'waiting', '-n', namespace]);
    expect(deployments.exitCode).not.toBe(0);

    await k(['create', 'secret', 'generic', 'taskapi-redis', '-n', namespace, '--from-literal=password=x']);
    await waitReady('waiting', namespace);
    const recovered = await json<TaskApiObject>(['get', 'taskapi', 'waiting', '-n', namespace]);
    expect(condition(recovered, 'Degraded')?.status).toBe('False');
  });

  it('refuses to swap onto a backend whose Secret key is missing, and leaves the running backend untouched', async () => {
    await k(['create', 'secret', 'generic', 'taskapi-postgresql', '-n', namespace, '--from-literal=wrong-key=x']);
    const template = await k(['get', 'deployment', 'waiting', '-n', namespace, '-o', 'jsonpath={.spec.template}']);
    await switchBackend('waiting', namespace, 'postgresql');
    await waitUntil(
      async () => {
        const taskApi = await json<TaskApiObject>(['get', 'taskapi', 'waiting', '-n', namespace]);
        return (
          condition(taskApi, 'Degraded')?.message.includes('key "connectionString" in Secret "taskapi-postgresql"') ??
          false
        );
      },
      { what: 'Degraded naming the missing key', timeoutMs: 20_000 },
    );
    const taskApi = await json<TaskApiObject>(['get', 'taskapi', 'waiting', '-n', namespace]);
    expect(taskApi.status?.stateBackend).toBe('redis');
    expect(taskApi.status?.swap?.phase).toBe('Blocked');
    expect(condition(taskApi, 'Ready')?.status).toBe('True');
    expect(await k(['get', 'deployment', 'waiting', '-n', namespace, '-o', 'jsonpath={.spec.template}'])).toBe(
      template,
    );
    const components = await k(['get', 'components.dapr.io', '-n', namespace, '-o', 'name']);
    expect(components).not.toContain('waiting-state-postgresql');
  });
});

describe('two TaskApis in one namespace', () => {
  it('do not collide: each gets its own children, scoped to its own app-id', async () => {
    const namespace = 'op-two';
    await createNamespaceWithSecrets(namespace);
    await k(
      ['apply', '-f', '-'],
      [taskApiManifest('alpha', namespace), taskApiManifest('beta', namespace, { stateBackend: 'postgresql' })].join(
        '---\n',
      ),
    );
    await waitReady('alpha', namespace);
    await waitReady('beta', namespace);
    const table = await k(['get', 'taskapis', '-n', namespace]);
    expect(table).toMatch(/^alpha\s+redis\s+True/m);
    expect(table).toMatch(/^beta\s+postgresql\s+True/m);
    const scopes = await k([
      'get',
      'components.dapr.io',
      '-n',
      namespace,
      '-o',
      'jsonpath={range .items[*]}{.metadata.name}={.scopes[0]}{"\\n"}{end}',
    ]);
    expect(scopes.trim().split('\n').sort()).toEqual([
      'alpha-pubsub=alpha',
      'alpha-secrets=alpha',
      'alpha-state-redis=alpha',
      'beta-pubsub=beta',
      'beta-secrets=beta',
      'beta-state-postgresql=beta',
    ]);
  });
});

describe('bad input', () => {
  const namespace = 'op-bad';
  beforeAll(async () => {
    await k(['create', 'namespace', namespace]);
  });
  const redis = { host: 'redis:6379' };
  const cases: [string, Record<string, unknown>, RegExp, string?][] = [
    ['no image', { image: undefined }, /spec\.image: Required value/],
    ['an overdue sweep without a schedule', { overdueSweep: {} }, /spec\.overdueSweep\.schedule: Required value/],
    [
      'an overdue sweep schedule that is no cron',
      { overdueSweep: { schedule: 'every day' } },
      /spec\.overdueSweep\.schedule/,
    ],
    [
      'an overdue sweep @every without a duration',
      { overdueSweep: { schedule: '@every soon' } },
      /spec\.overdueSweep\.schedule/,
    ],
    [
      'an overdue sweep with three cron fields',
      { overdueSweep: { schedule: '0 * *' } },
      /spec\.overdueSweep\.schedule/,
    ],
    ['empty image', { image: '' }, /spec\.image/],
    ['negative replicas', { replicas: -1 }, /spec\.replicas.*greater than or equal to 0/],
    ['too many replicas', { replicas: 101 }, /spec\.replicas.*less than or equal to 100/],
    ['replicas as text', { replicas: 'two' }, /spec\.replicas/],
    ['privileged app port', { appPort: 80 }, /spec\.appPort/],
    ['app port out of range', { appPort: 70000 }, /spec\.appPort/],
    ['unknown backend', { stateBackend: 'mongodb' }, /spec\.stateBackend: Unsupported value: "mongodb"/],
    [
      'postgresql without settings',
      { stateBackend: 'postgresql', postgresql: undefined },
      /spec\.postgresql is required when spec\.stateBackend is postgresql/,
    ],
    [
      'redis without settings',
      { redis: undefined, pubsub: { redis } },
      /spec\.redis is required when spec\.stateBackend is redis/,
    ],
    ['pub/sub without Redis', { stateBackend: 'postgresql', redis: undefined }, /pub\/sub needs Redis/],
    ['empty Redis host', { redis: { host: '' } }, /spec\.redis\.host/],
    ['Redis host with spaces', { redis: { host: 'not a host' } }, /spec\.redis\.host/],
    [
      'Secret ref without key',
      { redis: { host: 'redis:6379', passwordSecretRef: { name: 'x' } } },
      /spec\.redis\.passwordSecretRef\.key: Required value/,
    ],
    [
      'Secret name not DNS',
      { redis: { host: 'redis:6379', passwordSecretRef: { name: 'Bad_Name', key: 'k' } } },
      /spec\.redis\.passwordSecretRef\.name/,
    ],
    [
      'PostgreSQL without Secret ref',
      { postgresql: {} },
      /spec\.postgresql\.connectionStringSecretRef: Required value/,
    ],
    [
      'bad table name',
      { postgresql: { connectionStringSecretRef: { name: 'p', key: 'c' }, tableName: 'Bad-Table' } },
      /spec\.postgresql\.tableName/,
    ],
    ['bad topic', { pubsub: { topic: 'bad topic!' } }, /spec\.pubsub\.topic/],
    ['bad notification app-id', { notifications: { appId: 'Bad_App' } }, /spec\.notifications\.appId/],
    [
      'notifications to itself',
      { notifications: { appId: 'bad-input' } },
      /spec\.notifications\.appId must differ from metadata\.name/,
      'bad-input',
    ],
    ['unknown log level', { dapr: { logLevel: 'verbose' } }, /spec\.dapr\.logLevel: Unsupported value: "verbose"/],
    ['API logging as text', { dapr: { enableApiLogging: 'sometimes' } }, /spec\.dapr\.enableApiLogging/],
    ['CPU not a quantity', { resources: { limits: { cpu: 'lots' } } }, /spec\.resources\.limits\.cpu/],
    ['unknown field', { colour: 'blue' }, /unknown field "spec\.colour"/],
    ['name too long', {}, /metadata\.name must be a lowercase DNS label of at most 40 characters/, 'a'.repeat(41)],
    // Only CEL can judge this one: a DNS subdomain is a valid object name, but not an app-id and label.
    ['name with a dot', {}, /metadata\.name must be a lowercase DNS label/, 'has.dot'],
    [
      'PostgreSQL state, pub/sub Redis only, no PostgreSQL settings',
      { stateBackend: 'postgresql', redis: undefined, pubsub: { redis } },
      /spec\.postgresql is required when spec\.stateBackend is postgresql/,
    ],
    ['fractional replicas', { replicas: 1.5 }, /spec\.replicas/],
    ['app port as text', { appPort: 'http' }, /spec\.appPort/],
    ['image of 513 characters', { image: `r/${'i'.repeat(511)}` }, /spec\.image/],
    ['Redis port not a number', { redis: { host: 'redis:port' } }, /spec\.redis\.host/],
    ['Redis TLS as text', { redis: { host: 'redis:6379', enableTLS: 'sometimes' } }, /spec\.redis\.enableTLS/],
    [
      'Secret key with a slash',
      { redis: { host: 'redis:6379', passwordSecretRef: { name: 'r', key: 'a/b' } } },
      /spec\.redis\.passwordSecretRef\.key/,
    ],
    [
      'empty PostgreSQL Secret name',
      { postgresql: { connectionStringSecretRef: { name: '', key: 'c' } } },
      /spec\.postgresql\.connectionStringSecretRef\.name/,
    ],
    [
      'table name of 64 characters',
      { postgresql: { connectionStringSecretRef: { name: 'p', key: 'c' }, tableName: 't'.repeat(64) } },
      /spec\.postgresql\.tableName/,
    ],
    ['topic of 250 characters', { pubsub: { topic: 't'.repeat(250) } }, /spec\.pubsub\.topic/],
    ['bad pub/sub Redis host', { pubsub: { redis: { host: 'no way' } } }, /spec\.pubsub\.redis\.host/],
    [
      'notification deploy as text',
      { notifications: { appId: 'notifier', deploy: 'sometimes' } },
      /spec\.notifications\.deploy/,
    ],
    [
      'notification app-id of 64 characters',
      { notifications: { appId: 'n'.repeat(64) } },
      /spec\.notifications\.appId/,
    ],
    [
      'API token ref without a name',
      { apiTokenSecretRef: { key: 'token' } },
      /spec\.apiTokenSecretRef\.name: Required value/,
    ],
    [
      'sidecar memory not a quantity',
      { dapr: { sidecarResources: { limits: { memory: 'plenty' } } } },
      /spec\.dapr\.sidecarResources\.limits\.memory/,
    ],
    // Only CEL can judge these: the quantity pattern is Kubernetes' own, which takes a sign.
    [
      'negative memory',
      { resources: { requests: { memory: -1 } } },
      /spec\.resources\.requests\.memory: Invalid value.*must not be negative/,
    ],
    [
      'negative CPU',
      { resources: { limits: { cpu: '-100m' } } },
      /spec\.resources\.limits\.cpu: Invalid value.*must not be negative/,
    ],
    ['unknown Redis field', { redis: { host: 'redis:6379', db: 2 } }, /unknown field "spec\.redis\.db"/],
    ['unknown Dapr field', { dapr: { port: 3500 } }, /unknown field "spec\.dapr\.port"/],
  ];

  it.each(cases)('refuses %s with a message naming the field', async (label, spec, message, givenName) => {
    const name = givenName ?? `bad-${String(cases.findIndex(([other]) => other === label))}`;
    const manifest = stringify({
      apiVersion: 'taskapi.dev/v1alpha1',
      kind: 'TaskApi',
      metadata: { name, namespace },
      spec: Object.fromEntries(
        Object.entries({ image: 'registry.example/taskapi:1', redis, ...spec } as Record<string, unknown>).filter(
          ([, value]) => value !== undefined,
        ),
      ),
    });
    const result = await kubectl(kubeconfig, ['apply', '-f', '-'], manifest);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toMatch(message);
    expect((await kubectl(kubeconfig, ['get', 'taskapi', name, '-n', namespace])).exitCode).not.toBe(0);
  });
});

describe('install manifests', () => {
  it('config/default applies cleanly on the server (dry run)', async () => {
    await k(['create', 'namespace', 'taskapi-system']);
    const result = await kubectl(kubeconfig, ['apply', '-k', 'config/default', '--dry-run=server']);
    expect(result.stderr).not.toMatch(/error/i);
    expect(result.stdout).toMatch(
      /deployment\.apps\/taskapi-operator (created|configured|serverside-applied|unchanged) \(server dry run\)/,
    );
    expect(result.exitCode).toBe(0);
  });

  it('config/samples/features (overdue sweep, live settings) applies on the server, and kubectl explain describes both', async () => {
    await k(['create', 'namespace', 'op-features']);
    const result = await kubectl(kubeconfig, [
      'apply',
      '-k',
      'config/samples/features',
      '-n',
      'op-features',
      '--dry-run=server',
    ]);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/taskapi\.taskapi\.dev\/tasks-features created \(server dry run\)/);
    const sweep = await k(['explain', 'taskapi.spec.overdueSweep']);
    expect(sweep).toMatch(/cron binding/);
    expect(await k(['explain', 'taskapi.spec.overdueSweep.schedule'])).toMatch(/@every/);
    expect(await k(['explain', 'taskapi.spec.settings.store'])).toMatch(/notifications-enabled/);
  });
});

describe('leader election', () => {
  it('lets exactly one of two operators reconcile, and hands over when the leader is killed', async () => {
    await running().stop();
    const namespace = 'op-leader';
    await createNamespaceWithSecrets(namespace);
    const env = {
      LEADER_ELECT: 'true',
      LEADER_ELECTION_NAMESPACE: namespace,
      LEASE_DURATION_SECONDS: '3',
      RENEW_DEADLINE_SECONDS: '2',
      RETRY_PERIOD_SECONDS: '0.5',
    };
    const first = await startOperator({ kubeconfig, logDir, name: 'operator-a', env });
    const second = await startOperator({ kubeconfig, logDir, name: 'operator-b', env });
    const holder = () =>
      k(['get', 'lease', 'taskapi-operator', '-n', namespace, '-o', 'jsonpath={.spec.holderIdentity}']);
    try {
      await waitUntil(async () => ['operator-a', 'operator-b'].includes(await holder()), {
        what: 'a leader',
        timeoutMs: 20_000,
      });
      const leaderName = await holder();
      const [leader, follower] = leaderName === 'operator-a' ? [first, second] : [second, first];

      await k(['apply', '-f', '-'], taskApiManifest('led', namespace));
      await waitReady('led', namespace);
      expect(await leader.counter('controller_runtime_reconcile_total')).toBeGreaterThan(0);
      expect(await follower.counter('controller_runtime_reconcile_total')).toBe(0);

      leader.process.kill('SIGKILL');
      await waitUntil(async () => (await holder()) === follower.name, {
        what: 'the follower to take over',
        timeoutMs: 20_000,
      });
      await k(['apply', '-f', '-'], taskApiManifest('after-handover', namespace));
      await waitReady('after-handover', namespace);
      expect(await follower.counter('controller_runtime_reconcile_total')).toBeGreaterThan(0);

      // A graceful stop finishes its work, hands the Lease back and exits 0.
      follower.process.kill('SIGTERM');
      expect(await follower.process.exited).toEqual({ code: 0, signal: null });
      expect(await holder()).toBe('');
    } finally {
      await first.stop();
      await second.stop();
    }
  });
});

describe('a status computed from an older copy of its TaskApi (a cache behind the last write)', () => {
  it('lands after an edit of the spec alone, and never over a status written since', async () => {
    // No operator runs: every status write here is the test's own.
    await running().stop();
    const namespace = 'op-stale-status';
    await createNamespaceWithSecrets(namespace);
    await k(['apply', '-f', '-'], taskApiManifest('stale', namespace));
    const kube = operatorClient(await loadConnection({ KUBECONFIG: kubeconfig }));
    const read = async (): Promise<TaskApi> => {
      const taskApi = await readTaskApi(kube, namespace, 'stale');
      if (!taskApi) throw new Error('TaskApi op-stale-status/stale is gone');
      return taskApi;
    };
    const summary = async () =>
      k(['get', 'taskapi', 'stale', '-n', namespace, '-o', 'jsonpath={.status.stateBackend} {.status.replicaSummary}']);
    const status = (stateBackend: StateBackend, ready: number): TaskApiStatus => ({
      stateBackend,
      replicas: 2,
      readyReplicas: ready,
      replicaSummary: `${ready}/2`,
    });
    const annotate = async (value: string) =>
      k(['annotate', '--overwrite', 'taskapi', 'stale', '-n', namespace, `example.com/note=${value}`]);

    const first = await read();
    await applyStatusOnto(kube, first, status('redis', 1));
    expect(await summary()).toBe('redis 1/2');

    // Read before that write, as a lagging cache would hand it over: refused, the newer status stays.
    await annotate('one');
    await expect(applyStatusOnto(kube, first, status('postgresql', 0))).rejects.toThrow(StaleStatus);
    expect(await summary()).toBe('redis 1/2');

    // Read after it, with only the metadata changed since: written onto the stored version.
    const current = await read();
    await annotate('two');
    await k(['patch', 'taskapi', 'stale', '-n', namespace, '--type=merge', '-p', '{"spec":{"replicas":3}}']);
    await applyStatusOnto(kube, current, status('redis', 2));
    expect(await summary()).toBe('redis 2/2');
  });
});

describe('an operator run outside the cluster with an exec credential plugin (as EKS, GKE and AKS kubeconfigs have)', () => {
  it('gets its token from the plugin, once while it lasts, and reconciles as usual', async () => {
    await running().stop();
    const namespace = 'op-exec';
    await createNamespaceWithSecrets(namespace);
    // A kubeconfig like a cloud's: the user is a plugin printing an ExecCredential, named by a relative path.
    const home = join(dir, 'exec-kubeconfig');
    mkdirSync(join(home, 'bin'), { recursive: true });
    const admin = JSON.parse(readFileSync(kubeconfig, 'utf8')) as {
      clusters: { cluster: { server: string; 'certificate-authority-data': string } }[];
      users: { user: { token: string } }[];
    };
    const runs = join(home, 'runs');
    const expires = new Date(Date.now() + 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');
    const credential = JSON.stringify({
      apiVersion: 'client.authentication.k8s.io/v1',
      kind: 'ExecCredential',
      status: { token: admin.users[0]?.user.token, expirationTimestamp: expires },
    });
    writeFileSync(
      join(home, 'bin', 'credential'),
      `#!/bin/sh\necho "$CLUSTER_NAME" >> '${runs}'\nprintf '%s\\n' '${credential}'\n`,
      { mode: 0o755 },
    );
    const execKubeconfig = join(home, 'config');
    writeFileSync(
      execKubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        'current-context': 'cloud',
        clusters: [{ name: 'cloud', cluster: admin.clusters[0]?.cluster }],
        users: [
          {
            name: 'cloud-user',
            user: {
              exec: {
                apiVersion: 'client.authentication.k8s.io/v1',
                command: 'bin/credential',
                env: [{ name: 'CLUSTER_NAME', value: 'testbed' }],
              },
            },
          },
        ],
        contexts: [{ name: 'cloud', context: { cluster: 'cloud', user: 'cloud-user' } }],
      }),
    );
    const viaPlugin = await startOperator({ kubeconfig: execKubeconfig, logDir, name: 'operator-exec' });
    try {
      await k(['apply', '-f', '-'], taskApiManifest('by-plugin', namespace));
      await waitReady('by-plugin', namespace);
      await k(['patch', 'taskapi', 'by-plugin', '-n', namespace, '--type=merge', '-p', '{"spec":{"replicas":3}}']);
      await waitUntil(
        async () =>
          (await json<TaskApiObject>(['get', 'taskapi', 'by-plugin', '-n', namespace])).status?.replicaSummary ===
          '3/3',
        { what: 'the scale-up by the exec-authenticated operator', timeoutMs: 60_000 },
      );
      expect(await viaPlugin.counter('controller_runtime_reconcile_total')).toBeGreaterThan(2);
      // Every list, watch and write of the run shared one plugin run, with the plugin's env.
      expect(readFileSync(runs, 'utf8')).toBe('testbed\n');
    } finally {
      await viaPlugin.stop();
    }
  });
});
