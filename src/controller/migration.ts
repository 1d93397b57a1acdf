/**
 * A swap of state stores as the reconciler sees it: whether one is under way,
 * starts or goes back (from status and spec), where the pods and Components
 * stand meanwhile, and how the driver's state (swap.ts) is kept in status so
 * that a restarted operator or a new leader carries on from it.
 */
import type { StoreRef, SwapPlan } from '../api/contract.ts';
import { STATE_BACKENDS, type StateBackend, type TaskApi } from '../api/resource.ts';
import type { TaskApiStatus } from '../api/taskapi.ts';
import type { Placement } from './desired.ts';
import { names } from './names.ts';
import { DEFAULT_SWAP_SETTINGS, reverseSwap, startSwap, type SwapState } from './swap.ts';

type SwapStatus = NonNullable<TaskApiStatus['swap']>;

export const FIRST_GENERATION = '0';

/** How soon a pass looks again while a swap is under way. */
export const SWAP_STEP_INTERVAL_MS = 250;

/** The fence and step budgets the operator drives swaps with. */
export const SWAP_SETTINGS = { ...DEFAULT_SWAP_SETTINGS, fenceTimeoutMs: 10_000, stepTimeoutMs: 5_000 };

const ref = (taskApi: TaskApi, backend: StateBackend, generation: string): StoreRef => ({
  component: names.stateComponent(taskApi, backend),
  generation,
});

export function backendOf(taskApi: TaskApi, store: StoreRef): StateBackend {
  const backend = STATE_BACKENDS.find((name) => names.stateComponent(taskApi, name) === store.component);
  if (!backend) throw new Error(`no state backend has the Component ${store.component}`);
  return backend;
}

const active = (swap: SwapStatus | undefined): swap is SwapStatus =>
  swap !== undefined && swap.phase !== 'Completed' && swap.phase !== 'Blocked';

/** A swap is under way, or the spec names another store than the one that holds the truth (one starts, or waits). */
export const swapUnderWayOrDue = (taskApi: TaskApi): boolean =>
  active(taskApi.status?.swap) ||
  (taskApi.status?.stateBackend !== undefined && taskApi.status.stateBackend !== taskApi.spec.stateBackend);

/** The driver's state, as status recorded it. */
export function stateOf(taskApi: TaskApi, swap: SwapStatus): SwapState {
  if (swap.phase === 'Blocked' || swap.phase === 'Completed') throw new Error(`no swap under way (${swap.phase})`);
  return {
    phase: swap.phase,
    from: ref(taskApi, swap.from, swap.fromGeneration ?? FIRST_GENERATION),
    to: ref(taskApi, swap.to, swap.toGeneration ?? FIRST_GENERATION),
    revision: swap.revision ?? 0,
    copied: swap.copied ?? 0,
    total: swap.total ?? 0,
    blocked: swap.message,
    longestFenceMs: swap.longestFenceMs ?? 0,
    flipRetries: swap.flipRetries ?? 0,
    jobs: swap.jobs ?? 0,
    plan: swap.plan === undefined ? undefined : (JSON.parse(swap.plan) as SwapPlan),
    instances: swap.instances ?? [],
  };
}

/** The driver's state as status records it, with the store that is the source of truth now. */
export function statusOf(
  taskApi: TaskApi,
  state: SwapState,
): { swap: SwapStatus; stateBackend: StateBackend; stateGeneration: string } {
  const flipped = state.phase === 'Flipped' || state.phase === 'Finish' || state.phase === 'Completed';
  const truth = flipped ? state.to : state.from;
  const swap: SwapStatus = {
    from: backendOf(taskApi, state.from),
    to: backendOf(taskApi, state.to),
    phase: state.phase,
    ...(state.blocked === undefined ? {} : { message: state.blocked }),
    fromGeneration: state.from.generation,
    toGeneration: state.to.generation,
    revision: state.revision,
    copied: state.copied,
    total: state.total,
    progress: `${state.copied}/${state.total}`,
    longestFenceMs: Math.round(state.longestFenceMs),
    flipRetries: state.flipRetries,
    jobs: state.jobs,
    ...(state.plan === undefined ? {} : { plan: JSON.stringify(state.plan) }),
    ...(state.instances.length === 0 ? {} : { instances: state.instances }),
  };
  return { swap, stateBackend: backendOf(taskApi, truth), stateGeneration: truth.generation };
}

export interface SwapDecision {
  placement: Placement | undefined;
  /** The swap to take a step of this pass, after the children are in place. */
  swap: SwapState | undefined;
  /** It started this pass, or went back this pass (an Event each). */
  started: boolean;
  reverted: boolean;
}

/**
 * What this pass does about the state store. No swap: the pods run on the
 * store status names (the target, on a first pass). A new target whose
 * preflight passed starts a swap into a fresh generation; one under way goes
 * on, or back when spec.stateBackend was edited back. Meanwhile both stores'
 * Components exist, and the pods' Deployment keeps the store the swap started
 * from (no rollout: they follow the plan), until the swap completes.
 */
export function decideSwap(taskApi: TaskApi, preflightPassed: boolean): SwapDecision {
  const { status } = taskApi;
  const target = taskApi.spec.stateBackend;
  const running = status?.stateBackend;
  const generation = status?.stateGeneration ?? FIRST_GENERATION;
  const revision = status?.swap?.revision ?? 0;
  let swap: SwapState | undefined;
  let started = false;
  let reverted = false;
  if (active(status?.swap)) {
    swap = stateOf(taskApi, status.swap);
    if (backendOf(taskApi, swap.to) !== target) {
      const back = reverseSwap(swap);
      if (back) {
        swap = back;
        reverted = true;
      }
    }
  } else if (running && running !== target && preflightPassed) {
    swap = startSwap(ref(taskApi, running, generation), ref(taskApi, target, `g${revision + 1}`), revision);
    started = true;
  }
  if (swap) {
    const from = backendOf(taskApi, swap.from);
    return {
      placement: {
        podBackend: from,
        podGeneration: swap.from.generation,
        stateBackends: [...new Set([from, backendOf(taskApi, swap.to), ...(status?.swap ? [status.swap.to] : [])])],
        plan: swap.plan ?? steadyPlan(taskApi, from, swap.from.generation, revision),
      },
      swap,
      started,
      reverted,
    };
  }
  // No swap: the store status names; the target's Secrets missing leave it alone. A new TaskApi: its target, once it can run.
  if (!running && !preflightPassed) return { placement: undefined, swap: undefined, started, reverted };
  const backend = running ?? target;
  const placement: Placement = {
    podBackend: backend,
    podGeneration: generation,
    stateBackends: [backend],
    plan: steadyPlan(taskApi, backend, generation, revision),
  };
  return { placement, swap: undefined, started, reverted };
}

function steadyPlan(taskApi: TaskApi, backend: StateBackend, generation: string, revision: number): SwapPlan {
  return {
    revision,
    truth: ref(taskApi, backend, generation),
    mirror: null,
    fenced: false,
    fenceTimeoutMs: SWAP_SETTINGS.fenceTimeoutMs,
  };
}
