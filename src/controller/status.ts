/**
 * The TaskApi's status, computed from what this pass saw and did. Pure: the
 * clock comes in as `now`. A condition keeps its lastTransitionTime while its
 * status stays the same, so an unchanged world computes an unchanged status.
 */
import type { ConditionType, StateBackend, TaskApi } from '../api/resource.ts';
import type { Condition, TaskApiStatus } from '../api/taskapi.ts';
import { sidecarFailureMessage, type SidecarFailure } from './sidecar-failures.ts';

/** What the rollout judgement reads of a Deployment (a V1Deployment has it all). */
export interface DeploymentState {
  metadata?: { generation?: number };
  spec?: { replicas?: number };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    readyReplicas?: number;
    availableReplicas?: number;
  };
}

export interface PassOutcome {
  /** Backend the pods run on (or are rolling to); undefined while nothing can run yet. */
  podBackend: StateBackend | undefined;
  /** The task service's Deployment as it stands after this pass's apply. */
  deployment: DeploymentState | undefined;
  /** What preflight found missing, for people to read: `Secret "x"`, `key "k" in Secret "x"`. */
  missing: string[];
  /** A failure this pass could not get past, already safe to show (no secret in it). */
  failure?: { reason: string; message: string };
  /** Task pods whose Dapr sidecar exits and restarts (sidecar-failures.ts); looked for while pods are missing. */
  sidecars?: SidecarFailure[];
  /** The swap of state stores this pass took a step of (migration.ts). */
  swap?: {
    swap: NonNullable<TaskApiStatus['swap']>;
    stateBackend: StateBackend;
    stateGeneration: string;
    started: boolean;
    reverted: boolean;
  };
}

/** The Deployment has rolled out its current template: every pod is new and available. */
export function rolledOut(deployment: DeploymentState | undefined): boolean {
  if (!deployment?.status || !deployment.spec) return false;
  const desired = deployment.spec.replicas ?? 1;
  const { observedGeneration = 0, updatedReplicas = 0, replicas = 0, availableReplicas = 0 } = deployment.status;
  return (
    observedGeneration >= (deployment.metadata?.generation ?? 0) &&
    updatedReplicas === desired &&
    replicas === desired &&
    availableReplicas === desired
  );
}

function condition(
  previous: Condition[] | undefined,
  type: ConditionType,
  status: boolean,
  reason: string,
  message: string,
  generation: number | undefined,
  now: string,
): Condition {
  const value = status ? 'True' : 'False';
  const before = previous?.find((item) => item.type === type);
  return {
    type,
    status: value,
    reason,
    message,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    lastTransitionTime: before?.status === value ? before.lastTransitionTime : now,
  };
}

export function computeStatus(taskApi: TaskApi, outcome: PassOutcome, now: string): TaskApiStatus {
  const previous = taskApi.status;
  const generation = taskApi.metadata.generation;
  const target = taskApi.spec.stateBackend;
  const desiredReplicas = taskApi.spec.replicas;
  const { deployment, podBackend, missing, failure } = outcome;
  const readyReplicas = deployment?.status?.readyReplicas ?? 0;
  const available = deployment?.status?.availableReplicas ?? 0;
  const done = podBackend !== undefined && rolledOut(deployment);

  // Outside a swap, the backend is recorded once the first rollout onto it has finished.
  let stateBackend = done ? podBackend : previous?.stateBackend;
  let stateGeneration = previous?.stateGeneration;
  let swap: TaskApiStatus['swap'] = previous?.swap;
  const from = previous?.stateBackend;
  if (outcome.swap) {
    ({ swap, stateBackend, stateGeneration } = outcome.swap);
  } else if (from !== undefined && from !== target && missing.length > 0) {
    // Preflight refused the target: nothing starts, the running store stays the source of truth.
    stateBackend = from;
    swap = {
      from,
      to: target,
      phase: 'Blocked',
      message: missingMessage(missing),
      ...(previous?.swap?.revision === undefined ? {} : { revision: previous.swap.revision }),
    };
  }
  const migrating = swap !== undefined && swap.phase !== 'Completed' && swap.phase !== 'Blocked';

  const serving = deployment !== undefined && available >= desiredReplicas;
  const degraded =
    failure ??
    (missing.length > 0
      ? { reason: 'SecretMissing', message: missingMessage(missing) }
      : migrating && swap?.message !== undefined
        ? { reason: 'SwapBlocked', message: `swap from ${swap.from} to ${swap.to}, ${swap.phase}: ${swap.message}` }
        : outcome.sidecars?.length
          ? {
              reason: outcome.sidecars[0]?.component ? 'ComponentFailed' : 'SidecarFailing',
              message: sidecarFailureMessage(outcome.sidecars),
            }
          : undefined);
  const progressing = migrating || !done || stateBackend !== target;
  const progressMessage =
    migrating && swap
      ? `moving the tasks from ${swap.from} to ${swap.to}: phase ${swap.phase}, ${swap.progress ?? '0/0'} copied`
      : `rolling out ${desiredReplicas} pod(s) on ${target}`;
  const progressReason = degraded && !migrating ? 'Blocked' : migrating ? 'Migrating' : 'RollingOut';

  const conditions = [
    condition(
      previous?.conditions,
      'Ready',
      serving,
      serving ? 'Available' : (degraded?.reason ?? 'Unavailable'),
      serving
        ? `${readyReplicas}/${desiredReplicas} pods ready on ${stateBackend ?? target}`
        : (degraded?.message ?? `${available}/${desiredReplicas} pods available`),
      generation,
      now,
    ),
    condition(
      previous?.conditions,
      'Progressing',
      progressing && (degraded === undefined || migrating),
      progressing ? progressReason : 'Complete',
      progressing ? (degraded && !migrating ? degraded.message : progressMessage) : `running on ${target}`,
      generation,
      now,
    ),
    condition(
      previous?.conditions,
      'Degraded',
      degraded !== undefined,
      degraded?.reason ?? 'AsExpected',
      degraded?.message ?? 'no problems found',
      generation,
      now,
    ),
  ];

  return {
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    ...(stateBackend ? { stateBackend } : {}),
    ...(stateGeneration ? { stateGeneration } : {}),
    replicas: deployment?.status?.replicas ?? 0,
    readyReplicas,
    replicaSummary: `${readyReplicas}/${desiredReplicas}`,
    ...(swap ? { swap } : {}),
    conditions,
  };
}

export const missingMessage = (missing: string[]): string => `missing ${missing.join(', ')}`;
