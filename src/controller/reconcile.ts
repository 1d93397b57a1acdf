/**
 * reconcile(key): the operator's one contract. Read the TaskApi from the cache,
 * decide where the pods run (the swap), apply what differs from the desired
 * state, prune what is no longer desired, write status once if it changed.
 * It never knows which event woke it; every pass checks everything.
 *
 * Returns normally when done (optionally asking to look again later), throws
 * to be retried with backoff, throws TerminalError to stop retrying: the key
 * runs again when the TaskApi changes or at the next periodic resync.
 */
import { secretRefsFor, type StateBackend, type TaskApi } from '../api/resource.ts';
import type { TaskApiStatus } from '../api/taskapi.ts';
import { containsDesired } from './compare.ts';
import { desiredChildren, type Manifest } from './desired.ts';
import type { EventRecorder, EventType } from './events.ts';
import type { Index, Informer } from '../kube/informers.ts';
import { isNotFound, KubeApiError, rfc3339, type KubeClient } from '../kube/client.ts';
import { COMPONENT_LABEL, FIELD_MANAGER, RENDERED_HASH_ANNOTATION } from './names.ts';
import type { BuildSettings } from './resources/deployment.ts';
import { canonicalJson } from '../kube/hash.ts';
import { appliedFields } from '../kube/managed-fields.ts';
import type { RawObject } from '../kube/objects.ts';
import { childSnapshot, type ChildSnapshot, type TaskApiSnapshot } from './snapshot.ts';
import { applyStatusOnto, readTaskApi, secretKeys, StaleStatus } from './taskapi-client.ts';
import { computeStatus, type DeploymentState, type PassOutcome } from './status.ts';
import { preflightKeyOf, renderingOf, type VerifiedChild, type VerifiedPasses } from './verified.ts';
import { decideSwap, statusOf, SWAP_STEP_INTERVAL_MS, swapUnderWayOrDue } from './migration.ts';
import type { TokenSecrets } from './control-token.ts';
import { stepSwap, type SwapSettings } from './swap.ts';
import { clusterSwapPods } from './swap-pods.ts';
import { sidecarFailures } from './sidecar-failures.ts';

/**
 * The API refusals retrying cannot fix: the object we render is invalid (400,
 * 422). Conflicts, throttling, outages, timeouts and objects not found yet
 * are retried.
 */
export function isTerminalApiError(error: unknown): error is KubeApiError {
  return error instanceof KubeApiError && (error.statusCode === 400 || error.statusCode === 422);
}

/** A failure retrying cannot fix: recorded as a condition; run again when the TaskApi changes or on resync. */
export class TerminalError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = 'TerminalError';
    this.reason = reason;
  }
}

export interface ReconcileContext {
  kube: KubeClient;
  events: EventRecorder;
  taskApis: Informer<TaskApiSnapshot>;
  /** Informers of every owned kind, by kind. */
  children: ReadonlyMap<string, Informer<ChildSnapshot>>;
  /** Every cached child, of any kind, by its owner's key (`namespace/name`). */
  owned: Index<ChildSnapshot>;
  settings: BuildSettings;
  /** Per TaskApi key: what the last complete pass left in place. */
  verified: VerifiedPasses;
  /** The token each TaskApi's pods accept from the operator during a swap. */
  tokens: TokenSecrets;
  swapSettings: SwapSettings;
  now: () => Date;
}

export interface ReconcileResult {
  /** Look again after this long even if nothing changes (things the operator does not watch, like Secrets). */
  requeueAfterMs?: number;
}

/** While a referenced Secret is missing: Secrets are not watched (least privilege), so look again. */
export const MISSING_SECRET_RECHECK_MS = 3_000;

export async function reconcile(ctx: ReconcileContext, key: string): Promise<ReconcileResult> {
  const [namespace = '', name = ''] = key.split('/');
  const cachedTaskApi = ctx.taskApis.get(namespace, name);
  // Gone or going: the garbage collector removes the children through their owner references.
  if (!cachedTaskApi || cachedTaskApi.metadata.deletionTimestamp) {
    ctx.verified.delete(key);
    return {};
  }
  // The cache can lag behind the status the last pass wrote, and a swap steps from its status: while one is
  // under way or due, the pass reads the TaskApi as stored, so it never steps from a phase it has passed, nor
  // starts again a swap that has just completed.
  const taskApi = swapUnderWayOrDue(cachedTaskApi) ? await readTaskApi(ctx.kube, namespace, name) : cachedTaskApi;
  if (!taskApi || taskApi.metadata.deletionTimestamp) return {};

  const running = taskApi.status?.stateBackend;
  const target = taskApi.spec.stateBackend;
  const specChanged = taskApi.status?.observedGeneration !== taskApi.metadata.generation;
  const blocked = taskApi.status?.conditions?.some(
    (c) => c.type === 'Degraded' && c.reason === 'SecretMissing' && c.status === 'True',
  );
  // A preflight that passed holds for its generation and target: the passes right after it, which may
  // read the TaskApi before the status they wrote comes back, need not read the Secrets again.
  const { generation } = taskApi.metadata;
  const checked = !blocked && ctx.verified.passedPreflight(key, generation, target);
  const preflighted = !checked && (specChanged || blocked || running !== target);
  const missing = preflighted ? await preflight(ctx, taskApi, target) : [];
  const decision = decideSwap(taskApi, missing.length === 0);
  const { placement } = decision;

  const outcome: PassOutcome = { podBackend: placement?.podBackend, deployment: undefined, missing };
  const rendering = renderingOf(taskApi.metadata.uid, generation, placement);
  try {
    // Before the Deployments: their pods read Dapr's tokens, and the control token, from these Secrets.
    const [token] = await Promise.all([
      placement ? ctx.tokens.ensure(ctx.kube, taskApi, 'swap-control') : undefined,
      ctx.tokens.ensure(ctx.kube, taskApi, 'dapr-app-token'),
      ctx.tokens.ensure(ctx.kube, taskApi, 'dapr-api-token'),
    ]);
    const inPlace = ctx.verified.stillInPlace(
      key,
      rendering,
      ctx.owned.get(key).length,
      (kind, child) => informerFor(ctx, kind).get(namespace, child)?.appliedHash,
    );
    if (inPlace) {
      const deployment =
        inPlace.taskDeployment && informerFor(ctx, 'Deployment').get(namespace, inPlace.taskDeployment);
      outcome.deployment = deployment ? deployment.rollout : undefined;
    } else {
      const desired = desiredChildren(taskApi, placement, ctx.settings);
      const applied = await applyChildren(ctx, key, desired);
      await prune(ctx, key, desired);
      ctx.verified.set(key, {
        rendering,
        children: applied.children,
        taskDeployment: applied.taskDeployment,
        passedPreflight:
          checked || (preflighted && missing.length === 0) ? preflightKeyOf(generation, target) : undefined,
      });
      outcome.deployment = applied.deployment;
    }
    if (podsMissing(taskApi, outcome.deployment)) {
      // Not fatal to the pass: without them the status says only how many pods are available.
      outcome.sidecars = await sidecarFailures(ctx.kube, taskApi).catch(() => undefined);
    }
    if (decision.swap && token !== undefined) {
      const stepped = await stepSwap(decision.swap, clusterSwapPods(ctx.kube, taskApi, token), ctx.swapSettings);
      outcome.swap = { ...statusOf(taskApi, stepped), started: decision.started, reverted: decision.reverted };
    }
  } catch (error) {
    outcome.failure = { reason: 'ApplyFailed', message: error instanceof Error ? error.message : String(error) };
    // Not written when the status moved on meanwhile: the retry reports the failure, if it is one still.
    await writeStatus(ctx, taskApi, outcome).catch((writeError: unknown) => {
      if (!(writeError instanceof StaleStatus)) throw writeError;
    });
    if (isTerminalApiError(error)) throw new TerminalError('ApplyFailed', error.message);
    throw error;
  }
  await writeStatus(ctx, taskApi, outcome);
  if (outcome.swap && outcome.swap.swap.phase !== 'Completed') return { requeueAfterMs: SWAP_STEP_INTERVAL_MS };
  // Completed this pass: the next one rolls the pods onto the new store and removes the old Component.
  if (outcome.swap) return { requeueAfterMs: 0 };
  if (missing.length > 0) return { requeueAfterMs: MISSING_SECRET_RECHECK_MS };
  // A sidecar that exits and restarts changes no Deployment field the operator watches: look again.
  return podsMissing(taskApi, outcome.deployment) ? { requeueAfterMs: PODS_MISSING_RECHECK_MS } : {};
}

/** While fewer pods are available than asked for: how often the pass looks at why (a sidecar restarting). */
export const PODS_MISSING_RECHECK_MS = 10_000;

function podsMissing(taskApi: TaskApi, deployment: DeploymentState | undefined): boolean {
  return deployment !== undefined && (deployment.status?.availableReplicas ?? 0) < taskApi.spec.replicas;
}

/** What is missing among the referenced Secrets and keys, named for a person. Reads key names only, never values. */
async function preflight(ctx: ReconcileContext, taskApi: TaskApi, backend: StateBackend): Promise<string[]> {
  const refs = secretRefsFor(taskApi.spec, [backend]);
  const keysBySecret = new Map<string, Promise<string[] | undefined>>();
  for (const ref of refs) {
    if (!keysBySecret.has(ref.name))
      keysBySecret.set(ref.name, secretKeys(ctx.kube, taskApi.metadata.namespace, ref.name));
  }
  const missing = new Set<string>();
  for (const ref of refs) {
    const keys = await keysBySecret.get(ref.name);
    if (keys === undefined) missing.add(`Secret "${ref.name}"`);
    else if (!keys.includes(ref.key)) missing.add(`key "${ref.key}" in Secret "${ref.name}"`);
  }
  return [...missing];
}

const informerFor = (ctx: ReconcileContext, kind: string): Informer<ChildSnapshot> => {
  const informer = ctx.children.get(kind);
  if (!informer) throw new Error(`no informer for ${kind}`);
  return informer;
};

/**
 * Applies each child whose live copy lacks what we render (a new rendering, or
 * someone changed a field we set); returns what is now in place, and the task
 * Deployment as it now stands. RoleBindings go after the rest: the API server
 * refuses a binding whose Role it cannot find yet (its escalation check), so a
 * binding applied beside its Role would fail on every new TaskApi.
 */
async function applyChildren(
  ctx: ReconcileContext,
  key: string,
  desired: Manifest[],
): Promise<{ children: VerifiedChild[]; taskDeployment: string | undefined; deployment: DeploymentState | undefined }> {
  const known = ctx.verified.get(key)?.children ?? [];
  let deployment: DeploymentState | undefined;
  let taskDeployment: string | undefined;
  const ensure = async (manifest: Manifest): Promise<VerifiedChild> => {
    const { kind } = manifest;
    const { namespace, name, annotations } = manifest.metadata;
    const rendered = annotations?.[RENDERED_HASH_ANNOTATION] ?? '';
    let current = informerFor(ctx, kind).get(namespace, name);
    const last = known.find((child) => child.kind === kind && child.name === name);
    if (!current || last?.rendered !== rendered || last.appliedHash !== current.appliedHash) {
      // Not seen in this state yet: compare the live fields once, apply only if they fall short.
      const live = current && (await ctx.kube.get(manifest));
      current =
        live && containsDesired(manifest, appliedFields(live, FIELD_MANAGER))
          ? childSnapshot(live)
          : childSnapshot(await (kind === 'RoleBinding' ? applyBinding(ctx, manifest) : ctx.kube.apply(manifest)));
    }
    if (kind === 'Deployment' && manifest.metadata.labels?.[COMPONENT_LABEL] === 'task-service') {
      deployment = current.rollout;
      taskDeployment = name;
    }
    return { kind, name, rendered, appliedHash: current.appliedHash };
  };
  const children = await Promise.all(desired.filter((manifest) => manifest.kind !== 'RoleBinding').map(ensure));
  children.push(...(await Promise.all(desired.filter((manifest) => manifest.kind === 'RoleBinding').map(ensure))));
  return { children, taskDeployment, deployment };
}

/** Retries of a RoleBinding whose Role the API server's RBAC cache does not hold yet (milliseconds behind). */
const BINDING_RETRY_DELAYS_MS = [50, 200, 500];

async function applyBinding(ctx: ReconcileContext, manifest: Manifest): Promise<RawObject> {
  for (const delay of BINDING_RETRY_DELAYS_MS) {
    try {
      return await ctx.kube.apply(manifest);
    } catch (error) {
      if (!isNotFound(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
  return ctx.kube.apply(manifest);
}

/** Deletes children of this TaskApi that are no longer desired (the old state Component after a swap, ...). */
async function prune(ctx: ReconcileContext, key: string, desired: Manifest[]): Promise<void> {
  const wanted = new Set(desired.map((manifest) => `${manifest.kind}/${manifest.metadata.name}`));
  const namespace = key.slice(0, key.indexOf('/'));
  const stale = ctx.owned.get(key).filter((child) => !wanted.has(`${child.kind}/${child.metadata.name}`));
  await Promise.all(
    stale.map(async (child) => {
      await ctx.kube.delete({
        apiVersion: child.apiVersion,
        kind: child.kind,
        metadata: { namespace, name: child.metadata.name },
      });
    }),
  );
}

/** The status this pass computed, written if it changed (onto the status it was computed from: see applyStatusOnto). */
async function writeStatus(ctx: ReconcileContext, taskApi: TaskApi, outcome: PassOutcome): Promise<void> {
  const status = computeStatus(taskApi, outcome, rfc3339(ctx.now()));
  if (canonicalJson(status) === canonicalJson(taskApi.status ?? {})) return;
  await applyStatusOnto(ctx.kube, taskApi, status);
  recordTransitions(ctx, taskApi, taskApi.status, status, outcome);
}

/** Events for what a person watching `kubectl describe` wants to know: creation, swaps, failures. */
function recordTransitions(
  ctx: ReconcileContext,
  taskApi: TaskApi,
  before: TaskApiStatus | undefined,
  after: TaskApiStatus,
  outcome: PassOutcome,
): void {
  const events: [EventType, string, string][] = [];
  if (!before?.conditions)
    events.push(['Normal', 'Created', `rendering the task service on ${taskApi.spec.stateBackend}`]);
  const swap = after.swap;
  const was = before?.swap;
  if (swap && (was?.phase !== swap.phase || was.to !== swap.to || was.from !== swap.from)) {
    const moving = `the tasks from ${swap.from} to ${swap.to}`;
    if (outcome.swap?.reverted) {
      events.push(['Normal', 'SwapReverted', `spec.stateBackend is ${taskApi.spec.stateBackend} again: moving back`]);
    }
    if (outcome.swap?.started) events.push(['Normal', 'SwapStarted', `moving ${moving}`]);
    if (swap.phase === 'Completed') {
      events.push(['Normal', 'SwapCompleted', `moved ${moving}; the ${swap.from} state Component goes next`]);
    } else if (swap.phase !== 'Blocked') {
      events.push(['Normal', 'SwapPhase', `${swap.phase}: moving ${moving} (${swap.progress ?? '0/0'} copied)`]);
    }
  }
  const degraded = after.conditions?.find((c) => c.type === 'Degraded');
  const wasDegraded = before?.conditions?.find((c) => c.type === 'Degraded');
  if (degraded?.status === 'True' && (wasDegraded?.status !== 'True' || wasDegraded.message !== degraded.message)) {
    events.push(['Warning', degraded.reason, degraded.message]);
  }
  for (const [type, reason, message] of events) ctx.events.record(taskApi, type, reason, message);
}
