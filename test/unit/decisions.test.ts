/**
 * The operator's decisions, as tables with no I/O: where the pods run, the
 * status a pass writes (conditions, their transition times, the swap's phase),
 * which API errors stop retrying, and when the last pass still stands.
 */
import { describe, expect, it } from 'vitest';
import type { StateBackend, TaskApi } from '../../src/api/resource.ts';
import type { TaskApiStatus } from '../../src/api/taskapi.ts';
import type { SwapPlan } from '../../src/api/contract.ts';
import type { Placement } from '../../src/controller/desired.ts';
import { decideSwap, swapUnderWayOrDue } from '../../src/controller/migration.ts';
import { isTerminalApiError } from '../../src/controller/reconcile.ts';
import { failedComponentInLog, renderedComponents } from '../../src/controller/sidecar-failures.ts';
import { computeStatus, rolledOut, type DeploymentState, type PassOutcome } from '../../src/controller/status.ts';
import { preflightKeyOf, renderingOf, VerifiedPasses, type VerifiedPass } from '../../src/controller/verified.ts';
import { KubeApiError } from '../../src/kube/client.ts';
import { taskApiFixture } from '../support/taskapi-fixtures.ts';

describe('placement: where the pods run, which state Components exist, and the swap a pass steps', () => {
  const fixture = (stateBackend: StateBackend, status?: TaskApiStatus): TaskApi => ({
    ...taskApiFixture({ stateBackend }),
    ...(status ? { status } : {}),
  });
  const running = (backend: StateBackend, swap?: TaskApiStatus['swap']): TaskApiStatus => ({
    stateBackend: backend,
    stateGeneration: '0',
    ...(swap ? { swap } : {}),
  });

  it.each<[string, TaskApi, boolean, { pods?: string; components?: string[]; swap?: string }]>([
    ['a new TaskApi: its target', fixture('redis'), true, { pods: 'redis@0', components: ['redis'] }],
    ['a new TaskApi whose Secrets are missing: nothing yet', fixture('redis'), false, {}],
    ['steady', fixture('redis', running('redis')), true, { pods: 'redis@0', components: ['redis'] }],
    [
      'a new target: a swap starts into a fresh generation; the pods stay where they are',
      fixture('postgresql', running('redis', { from: 'redis', to: 'postgresql', phase: 'Completed', revision: 6 })),
      true,
      { pods: 'redis@0', components: ['redis', 'postgresql'], swap: 'TargetAdded redis@0 > postgresql@g7' },
    ],
    [
      'a new target whose Secrets are missing: the running store is left alone',
      fixture('postgresql', running('redis')),
      false,
      { pods: 'redis@0', components: ['redis'] },
    ],
    [
      'edited back during the backfill: straight back to the old store alone, both Components kept until then',
      fixture('redis', running('redis', { from: 'redis', to: 'postgresql', phase: 'Backfill', toGeneration: 'g1' })),
      true,
      { pods: 'redis@0', components: ['redis', 'postgresql'], swap: 'Finish redis@0 > redis@0' },
    ],
    [
      'edited back once flipped: the swap runs the other way, into the generation the old store kept',
      fixture(
        'redis',
        running('postgresql', {
          from: 'redis',
          to: 'postgresql',
          phase: 'Flipped',
          toGeneration: 'g1',
          fromGeneration: '0',
        }),
      ),
      true,
      { pods: 'postgresql@g1', components: ['postgresql', 'redis'], swap: 'Backfill postgresql@g1 > redis@0' },
    ],
    [
      'edited back during the flip: the flip ends first',
      fixture('redis', running('redis', { from: 'redis', to: 'postgresql', phase: 'Flip', toGeneration: 'g1' })),
      true,
      { pods: 'redis@0', components: ['redis', 'postgresql'], swap: 'Flip redis@0 > postgresql@g1' },
    ],
  ])('%s', (_what, taskApi, preflightPassed, expected) => {
    const { placement, swap } = decideSwap(taskApi, preflightPassed);
    const at = (store: { component: string; generation: string }) =>
      `${store.component.replace(`${taskApi.metadata.name}-state-`, '')}@${store.generation}`;
    expect({
      ...(placement ? { pods: `${placement.podBackend}@${placement.podGeneration}` } : {}),
      ...(placement ? { components: placement.stateBackends } : {}),
      ...(swap ? { swap: `${swap.phase} ${at(swap.from)} > ${at(swap.to)}` } : {}),
    }).toEqual(expected);
    // The pods start from the plan in force: the store that is the truth now.
    if (placement && !swap)
      expect(placement.plan.truth.component).toBe(`${taskApi.metadata.name}-state-${placement.podBackend}`);
  });
});

const NOW = '2026-12-01T10:00:00Z';
const LATER = '2026-12-01T10:05:00Z';

function deployment(replicas: number, ready: number, { generation = 1, observed = 1, updated = ready } = {}) {
  return {
    metadata: { generation },
    spec: { replicas },
    status: {
      observedGeneration: observed,
      replicas,
      updatedReplicas: updated,
      readyReplicas: ready,
      availableReplicas: ready,
    },
  } satisfies DeploymentState;
}

function withStatus(taskApi: TaskApi, status: TaskApiStatus | undefined, generation = 1): TaskApi {
  return { ...taskApi, metadata: { ...taskApi.metadata, generation }, ...(status ? { status } : {}) };
}

const conditionsOf = (status: TaskApiStatus) =>
  Object.fromEntries(
    (status.conditions ?? []).map((c) => [
      c.type,
      `${c.status} ${c.reason} @${c.lastTransitionTime} gen${c.observedGeneration}`,
    ]),
  );

describe('which passes read the TaskApi as stored rather than from the cache', () => {
  const at = (stateBackend: StateBackend, running?: StateBackend, phase?: string): TaskApi => ({
    ...taskApiFixture({ stateBackend }),
    ...(running
      ? {
          status: {
            stateBackend: running,
            ...(phase ? { swap: { from: running, to: stateBackend, phase } } : {}),
          } as TaskApiStatus,
        }
      : {}),
  });
  it.each<[string, TaskApi, boolean]>([
    ['a new TaskApi', at('redis'), false],
    ['steady', at('redis', 'redis'), false],
    ['steady after a swap completed', at('redis', 'redis', 'Completed'), false],
    ['a new target: a swap is due', at('postgresql', 'redis', 'Completed'), true],
    ['a swap under way', at('postgresql', 'redis', 'Backfill'), true],
    ['a swap edited back while under way', at('redis', 'redis', 'Verify'), true],
    ['blocked on a missing Secret', at('postgresql', 'redis', 'Blocked'), true],
  ])('%s', (_label, taskApi, live) => {
    expect(swapUnderWayOrDue(taskApi)).toBe(live);
  });
});

describe('rollout judgement', () => {
  it.each<[string, DeploymentState | undefined, boolean]>([
    ['no Deployment yet', undefined, false],
    ['all new pods available', deployment(2, 2), true],
    ['one pod not ready', deployment(2, 1), false],
    ['an old template still counted', deployment(2, 2, { generation: 2, observed: 1 }), false],
    ['old pods not replaced yet', deployment(2, 2, { updated: 1 }), false],
  ])('%s: %s', (_what, state, expected) => {
    expect(rolledOut(state)).toBe(expected);
  });
});

describe('status computed by a pass', () => {
  const redis = taskApiFixture({ stateBackend: 'redis', replicas: 2 });
  const outcome = (patch: Partial<PassOutcome>): PassOutcome => ({
    podBackend: 'redis',
    deployment: deployment(2, 2),
    missing: [],
    ...patch,
  });

  it('a new TaskApi rolling out: Progressing, not Ready yet, no backend in status', () => {
    const status = computeStatus(withStatus(redis, undefined), outcome({ deployment: deployment(2, 0) }), NOW);
    expect(status.stateBackend).toBeUndefined();
    expect(conditionsOf(status)).toEqual({
      Ready: `False Unavailable @${NOW} gen1`,
      Progressing: `True RollingOut @${NOW} gen1`,
      Degraded: `False AsExpected @${NOW} gen1`,
    });
    expect(status.replicaSummary).toBe('0/2');
  });

  it('rolled out: Ready, backend recorded; an unchanged world keeps every transition time', () => {
    const first = computeStatus(withStatus(redis, undefined), outcome({}), NOW);
    expect(first.stateBackend).toBe('redis');
    expect(conditionsOf(first)).toEqual({
      Ready: `True Available @${NOW} gen1`,
      Progressing: `False Complete @${NOW} gen1`,
      Degraded: `False AsExpected @${NOW} gen1`,
    });
    const again = computeStatus(withStatus(redis, first), outcome({}), LATER);
    expect(again).toEqual(first);
  });

  it('a new generation moves observedGeneration but not the transition times of unchanged conditions', () => {
    const first = computeStatus(withStatus(redis, undefined), outcome({}), NOW);
    const next = computeStatus(withStatus(redis, first, 2), outcome({}), LATER);
    expect(next.observedGeneration).toBe(2);
    expect(conditionsOf(next)).toEqual({
      Ready: `True Available @${NOW} gen2`,
      Progressing: `False Complete @${NOW} gen2`,
      Degraded: `False AsExpected @${NOW} gen2`,
    });
  });

  const running = computeStatus(withStatus(redis, undefined), outcome({}), NOW);
  const toPostgres = withStatus(taskApiFixture({ stateBackend: 'postgresql', replicas: 2 }), running, 2);

  const swapping = (phase: 'Backfill' | 'Completed', message?: string): NonNullable<PassOutcome['swap']> => ({
    swap: {
      from: 'redis',
      to: 'postgresql',
      phase,
      progress: '640/1000',
      ...(message === undefined ? {} : { message }),
    },
    stateBackend: phase === 'Completed' ? 'postgresql' : 'redis',
    stateGeneration: phase === 'Completed' ? 'g1' : '0',
    started: false,
    reverted: false,
  });
  const rolled = deployment(2, 2, { generation: 2, observed: 2 });

  it.each<[string, PassOutcome, string | undefined, StateBackend, Record<string, string>, string]>([
    [
      'copying: Migrating, with the phase and progress; still serving from redis',
      outcome({ podBackend: 'redis', deployment: rolled, swap: swapping('Backfill') }),
      'Backfill',
      'redis',
      {
        Ready: `True Available @${NOW} gen2`,
        Progressing: `True Migrating @${LATER} gen2`,
        Degraded: `False AsExpected @${NOW} gen2`,
      },
      'moving the tasks from redis to postgresql: phase Backfill, 640/1000 copied',
    ],
    [
      'the new store unreachable: Degraded with the reason, still Migrating, still on redis',
      outcome({ podBackend: 'redis', deployment: rolled, swap: swapping('Backfill', 'backfill failed: store down') }),
      'Backfill',
      'redis',
      {
        Ready: `True Available @${NOW} gen2`,
        Progressing: `True Migrating @${LATER} gen2`,
        Degraded: `True SwapBlocked @${LATER} gen2`,
      },
      'moving the tasks from redis to postgresql: phase Backfill, 640/1000 copied',
    ],
    [
      'completed: the new store is the truth',
      outcome({ podBackend: 'redis', deployment: rolled, swap: swapping('Completed') }),
      'Completed',
      'postgresql',
      {
        Ready: `True Available @${NOW} gen2`,
        Progressing: `False Complete @${NOW} gen2`,
        Degraded: `False AsExpected @${NOW} gen2`,
      },
      'running on postgresql',
    ],
    [
      "blocked: the target's Secret is missing, nothing starts, the pods stay on redis",
      outcome({ missing: ['Secret "pg-auth"'] }),
      'Blocked',
      'redis',
      {
        Ready: `True Available @${NOW} gen2`,
        Progressing: `False Blocked @${NOW} gen2`,
        Degraded: `True SecretMissing @${LATER} gen2`,
      },
      'missing Secret "pg-auth"',
    ],
  ])('a swap, %s', (_what, pass, phase, backend, conditions, progressMessage) => {
    const status = computeStatus(toPostgres, pass, LATER);
    expect(status.swap?.phase).toBe(phase);
    expect(status.stateBackend).toBe(backend);
    expect(conditionsOf(status)).toEqual(conditions);
    expect(status.conditions?.find((c) => c.type === 'Progressing')?.message).toBe(progressMessage);
  });

  it('a failed apply is Degraded with its reason, and says so in Ready while nothing serves', () => {
    const status = computeStatus(
      withStatus(redis, undefined),
      outcome({ deployment: undefined, failure: { reason: 'ApplyFailed', message: 'apply Deployment: 422 Invalid' } }),
      NOW,
    );
    expect(conditionsOf(status)).toEqual({
      Ready: `False ApplyFailed @${NOW} gen1`,
      Progressing: `False Blocked @${NOW} gen1`,
      Degraded: `True ApplyFailed @${NOW} gen1`,
    });
    expect(status.conditions?.find((c) => c.type === 'Degraded')?.message).toBe('apply Deployment: 422 Invalid');
  });

  it('a sidecar that keeps failing on a Component: Degraded naming it, the field to fix and the log to read, and the same status while it goes on failing', () => {
    const settings = { name: 'tasks-settings', type: 'configuration.redis', field: 'spec.settings.store' };
    const failing = outcome({
      deployment: deployment(2, 1),
      sidecars: [
        { pod: 'tasks-7d9-abc', exitCode: 1, component: settings },
        { pod: 'tasks-7d9-def', exitCode: 1, component: settings },
      ],
    });
    const first = computeStatus(withStatus(redis, undefined), failing, NOW);
    expect(conditionsOf(first)).toEqual({
      Ready: `False ComponentFailed @${NOW} gen1`,
      Progressing: `False Blocked @${NOW} gen1`,
      Degraded: `True ComponentFailed @${NOW} gen1`,
    });
    expect(first.conditions?.find((c) => c.type === 'Ready')?.message).toBe(
      'the Dapr sidecar of pod tasks-7d9-abc (and 1 more pod(s)) cannot initialise Component tasks-settings (configuration.redis, from spec.settings.store) and restarts; kubectl logs tasks-7d9-abc -c daprd --previous says why',
    );
    expect(computeStatus(withStatus(redis, first), failing, LATER)).toEqual(first);
    // A sidecar exiting on something else: what Kubernetes says of it; and none once the pods are back.
    const unnamed = computeStatus(
      withStatus(redis, first),
      outcome({
        deployment: deployment(2, 1),
        sidecars: [{ pod: 'tasks-7d9-abc', exitCode: 2, component: undefined }],
      }),
      LATER,
    );
    expect(unnamed.conditions?.find((c) => c.type === 'Degraded')).toMatchObject({
      status: 'True',
      reason: 'SidecarFailing',
      message:
        'the Dapr sidecar of pod tasks-7d9-abc exits with exit code 2 and restarts; kubectl logs tasks-7d9-abc -c daprd --previous says why',
    });
    const back = computeStatus(withStatus(redis, unnamed), outcome({}), LATER);
    expect(conditionsOf(back)).toMatchObject({
      Ready: `True Available @${LATER} gen1`,
      Degraded: `False AsExpected @${LATER} gen1`,
    });
  });
});

describe('which API errors stop the retries', () => {
  it.each<[string, unknown, boolean]>([
    ['400 BadRequest: the rendered object is malformed', new KubeApiError('apply', 400, 'BadRequest', ''), true],
    ['422 Invalid: the rendered object is refused', new KubeApiError('apply', 422, 'Invalid', ''), true],
    ['404 NotFound: the Role is not in the RBAC cache yet', new KubeApiError('apply', 404, 'NotFound', ''), false],
    ['409 Conflict', new KubeApiError('apply', 409, 'Conflict', ''), false],
    ['429 TooManyRequests', new KubeApiError('apply', 429, 'TooManyRequests', ''), false],
    ['500 InternalError', new KubeApiError('apply', 500, 'InternalError', ''), false],
    [
      '403 Forbidden: RBAC may be fixed without touching the TaskApi',
      new KubeApiError('apply', 403, 'Forbidden', ''),
      false,
    ],
    ['a connection failure', new Error('apply: connect ECONNREFUSED'), false],
  ])('%s: terminal %s', (_what, error, terminal) => {
    expect(isTerminalApiError(error)).toBe(terminal);
  });
});

describe('the verified-pass cache', () => {
  const plan: SwapPlan = {
    revision: 4,
    truth: { component: 'x-state-redis', generation: '0' },
    mirror: null,
    fenced: false,
    fenceTimeoutMs: 10_000,
  };
  const placement: Placement = { podBackend: 'redis', podGeneration: '0', stateBackends: ['redis'], plan };
  const swapping: Placement = { ...placement, stateBackends: ['redis', 'postgresql'], plan: { ...plan, revision: 5 } };
  const rendering = renderingOf('uid-1', 3, placement);
  const pass: VerifiedPass = {
    rendering,
    children: [
      { kind: 'Deployment', name: 'tasks', rendered: 'r1', appliedHash: 'h1' },
      { kind: 'Service', name: 'tasks', rendered: 'r2', appliedHash: 'h2' },
    ],
    taskDeployment: 'tasks',
    passedPreflight: preflightKeyOf(3, 'redis'),
  };
  const live: Record<string, string> = { 'Deployment/tasks': 'h1', 'Service/tasks': 'h2' };

  it('names a rendering by uid, generation and placement', () => {
    expect(rendering).toBe('uid-1/3/redis@0/redis/plan 4');
    expect(renderingOf('uid-1', undefined, undefined)).toBe('uid-1/0/-/-');
    expect(renderingOf('uid-1', 3, swapping)).toBe('uid-1/3/redis@0/redis,postgresql/plan 5');
  });

  it.each<[string, string, number, Record<string, string>, boolean]>([
    ['nothing moved', rendering, 2, live, true],
    ['a new generation', renderingOf('uid-1', 4, placement), 2, live, false],
    ['a swap changed the placement', renderingOf('uid-1', 3, swapping), 2, live, false],
    ['someone edited a field we set (its applied hash moved)', rendering, 2, { ...live, 'Service/tasks': 'h9' }, false],
    ['a child was deleted', rendering, 1, { 'Deployment/tasks': 'h1' }, false],
    ['an extra owned object appeared', rendering, 3, live, false],
  ])('%s: still in place %s', (_what, now, owned, hashes, expected) => {
    const cache = new VerifiedPasses();
    cache.set('team-a/tasks', pass);
    const hit = cache.stillInPlace('team-a/tasks', now, owned, (kind, name) => hashes[`${kind}/${name}`]);
    expect(hit !== undefined).toBe(expected);
  });

  it('remembers a passed preflight for its generation and target only, and forgets a deleted TaskApi', () => {
    const cache = new VerifiedPasses();
    expect(cache.passedPreflight('team-a/tasks', 3, 'redis')).toBe(false);
    cache.set('team-a/tasks', pass);
    expect(cache.passedPreflight('team-a/tasks', 3, 'redis')).toBe(true);
    expect(cache.passedPreflight('team-a/tasks', 4, 'redis')).toBe(false);
    expect(cache.passedPreflight('team-a/tasks', 3, 'postgresql')).toBe(false);
    cache.delete('team-a/tasks');
    expect(cache.stillInPlace('team-a/tasks', rendering, 2, () => 'h1')).toBeUndefined();
  });
});

describe("which Component a restarting sidecar's previous log names", () => {
  const components = renderedComponents(taskApiFixture({ stateBackend: 'redis' }, 'tasks'));
  const line = (level: string, msg: string) =>
    `time="2026-12-02T04:20:00.1Z" level=${level} msg="${msg}" app_id=tasks instance=tasks-7d9-abc scope=dapr.runtime.processor type=log ver=1.18.1`;

  it('names the Component daprd failed to initialise before it exited, in text or JSON logs, with the field to fix', () => {
    // The last lines daprd 1.18.1 logged when its configuration store refused the connection.
    const log = [
      line('info', 'Component loaded: tasks-secrets (secretstores.kubernetes/v1)'),
      line('info', 'Component loaded: tasks-state-redis (state.redis/v1)'),
      line(
        'error',
        'Failed to init component tasks-settings (configuration.redis/v1): [INIT_COMPONENT_FAILURE]: initialization error occurred for tasks-settings (configuration.redis/v1): redis store: error connecting to redis at 127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused',
      ),
      line(
        'warning',
        'Error processing component, daprd will exit gracefully: process component tasks-settings error: [INIT_COMPONENT_FAILURE]: initialization error occurred for tasks-settings (configuration.redis/v1): …',
      ),
      line('info', 'All outstanding components processed'),
      `time="2026-12-02T04:26:03.94371706Z" level=info msg="stopping mDNS server for app id: tasks" app_id=tasks component="nr (mdns/v1)" instance=tasks-7d9-abc scope=dapr.contrib type=log ver=1.18.1`,
      line(
        'fatal',
        'Fatal error from runtime: process component tasks-settings error: [INIT_COMPONENT_FAILURE]: initialization error occurred for tasks-settings (configuration.redis/v1): …',
      ),
    ].join('\n');
    expect(failedComponentInLog(log, components)).toEqual({
      name: 'tasks-settings',
      type: 'configuration.redis',
      field: 'spec.settings.store',
    });
    const json = JSON.stringify({
      level: 'error',
      msg: 'Failed to init component tasks-state-postgresql (state.postgresql/v1): [INIT_COMPONENT_FAILURE]: …',
      scope: 'dapr.runtime.processor',
    });
    expect(failedComponentInLog(json, components)?.field).toBe('spec.postgresql');
  });

  it("names nothing for a Component that is not the TaskApi's, or a log with no component failure", () => {
    expect(
      failedComponentInLog(line('error', 'Failed to init component other-state (state.redis/v1): …'), components),
    ).toBeUndefined();
    expect(
      failedComponentInLog(line('fatal', 'Fatal error from runtime: failed to load certificate'), components),
    ).toBeUndefined();
  });
});
