/**
 * Driving a swap of state stores through every task pod (docs/swap.md): the
 * phases, the plan each one puts the pods in, and one bounded step at a time,
 * so the operator can take a step per reconcile and record where it stands in
 * status (a restarted operator or a new leader goes on from there).
 *
 * A phase ends only when every running pod has confirmed it. The pods are
 * reached through the SwapPods port (HTTP to each pod in the cluster).
 */
import type { StoreRef, SwapJobKind, SwapJobStatus, SwapPlan, SwapReport } from '../api/contract.ts';
import { SWAP_PHASES } from '../api/resource.ts';

/** The phases the driver steps through (status.swap.phase also has Blocked: preflight refused to start). */
export type SwapPhase = Exclude<(typeof SWAP_PHASES)[number], 'Blocked'>;
const PHASES = SWAP_PHASES.filter((phase): phase is SwapPhase => phase !== 'Blocked');

/** Where a swap stands: what status records. */
export interface SwapState {
  phase: SwapPhase;
  from: StoreRef;
  to: StoreRef;
  /** The last plan revision pushed. */
  revision: number;
  /** Index entries the copier has walked, and about how many there are (for `kubectl get`). */
  copied: number;
  total: number;
  /** Why the swap cannot go on right now; cleared when a step succeeds. */
  blocked: string | undefined;
  /** The longest write fence so far (ms), and how many flips were given up and retried. */
  longestFenceMs: number;
  flipRetries: number;
  /** Copier jobs finished so far: names the next one, so a step repeated after a restart follows the same job. */
  jobs: number;
  /** The plan last published and sent to the pods. */
  plan: SwapPlan | undefined;
  /**
   * The pod processes that have mirrored in this swap. One that goes away
   * before the flip may take mirror writes it owed (or was making) with it,
   * so the copy starts again into a fresh generation.
   */
  instances: string[];
}

export interface SwapPods {
  /** The pods running now, by a stable name. */
  list(): Promise<string[]>;
  /** Makes `plan` what pods start from (the operator's ConfigMap), before any pod is sent it. */
  publish(plan: SwapPlan): Promise<void>;
  report(pod: string): Promise<SwapReport>;
  /** Sets the pod's plan; answers once it is in force (for a fence: its writes in flight done). */
  push(pod: string, plan: SwapPlan): Promise<SwapReport>;
  startJob(pod: string, job: { id: string; kind: SwapJobKind; revision: number }): Promise<SwapJobStatus>;
  /** Undefined when the store behind `component` answers through the pod's sidecar; else why not. */
  probe(pod: string, component: string): Promise<string | undefined>;
}

export interface SwapSettings {
  fenceTimeoutMs: number;
  /** How long a step waits for pods and jobs before it returns (the next step goes on). */
  stepTimeoutMs: number;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
}

export const DEFAULT_SWAP_SETTINGS: SwapSettings = {
  fenceTimeoutMs: 10_000,
  stepTimeoutMs: 30_000,
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export function startSwap(from: StoreRef, to: StoreRef, revision: number): SwapState {
  return {
    phase: 'TargetAdded',
    from,
    to,
    revision,
    copied: 0,
    total: 0,
    blocked: undefined,
    longestFenceMs: 0,
    flipRetries: 0,
    jobs: 0,
    plan: undefined,
    instances: [],
  };
}

/** The plan for `state`'s phase, at `revision`. */
export function planOf(state: SwapState, revision: number, fenceTimeoutMs: number): SwapPlan {
  const { from, to } = state;
  const plan = (truth: StoreRef, mirror: StoreRef | null, fenced = false): SwapPlan => ({
    revision,
    truth,
    mirror,
    fenced,
    fenceTimeoutMs,
  });
  switch (state.phase) {
    case 'TargetAdded':
      return plan(from, null);
    case 'DualWrite':
    case 'Backfill':
    case 'Verify':
      return plan(from, to);
    case 'Flip':
      return plan(from, to, true);
    case 'Flipped':
      // The new store is the truth; the old one is still mirrored, so going back is cheap.
      return plan(to, from);
    case 'Finish':
    case 'Completed':
      return plan(to, null);
  }
}

const next = (phase: SwapPhase): SwapPhase => PHASES[PHASES.indexOf(phase) + 1] ?? 'Completed';

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/**
 * One step of the swap: puts every pod in the plan of the current phase,
 * waits (bounded) for what the phase needs, and returns the new state: the
 * next phase when this one is done, the same one (with `blocked` saying why)
 * when it is not yet.
 */
export async function stepSwap(state: SwapState, pods: SwapPods, settings: SwapSettings): Promise<SwapState> {
  try {
    if (MIRRORED_BEFORE_FLIP.has(state.phase) && state.instances.length > 0) {
      const reports = await Promise.all((await pods.list()).map((pod) => pods.report(pod)));
      const running = new Set(reports.map((report) => report.instance));
      const gone = state.instances.filter((instance) => !running.has(instance));
      // A flip some pods already made is finished, not undone (they wrote to the new store, mirroring the old).
      const flipped = reports.some((report) => sameRef(report.plan.truth, state.to));
      if (gone.length > 0 && !flipped) {
        // Told at once, so writes a replacement holds go on now; the reason stays for status to show.
        const again = startOver(state, gone.length);
        const told = await confirmed(again, pods, settings, () => undefined);
        return { ...told, blocked: told.blocked ?? again.blocked };
      }
    }
    switch (state.phase) {
      case 'TargetAdded': {
        const added = await confirmed(state, pods, settings, (report) =>
          report.loaded.includes(state.to.component) ? undefined : `${state.to.component} not loaded`,
        );
        if (added.phase === 'TargetAdded') return added;
        // The preflight through the new Component itself: nothing is mirrored to a store that does not answer.
        const [pod] = (await pods.list()).sort();
        const problem = pod === undefined ? 'no task pod is running' : await pods.probe(pod, state.to.component);
        if (problem === undefined) return added;
        return { ...added, phase: 'TargetAdded', blocked: `the new store does not answer: ${problem}` };
      }
      case 'Finish':
        // Undone before the flip: the old store was the truth throughout, so no pod needs to confirm going back
        // to it alone (one that does not answer yet reads the plan from the ConfigMap, or hears it next time).
        if (sameRef(state.from, state.to)) return await everyPodTold(state, pods, settings);
        return await confirmed(state, pods, settings, () => undefined);
      case 'DualWrite':
      case 'Flipped':
        return await confirmed(state, pods, settings, () => undefined);
      case 'Backfill':
      case 'Verify': {
        const pushed = await confirmed({ ...state, phase: 'DualWrite' }, pods, settings, () => undefined);
        if (pushed.phase === 'DualWrite') return { ...pushed, phase: state.phase };
        const kind = state.phase === 'Backfill' ? 'backfill' : 'verify';
        const after = await runJob({ ...state, revision: pushed.revision }, pods, settings, kind);
        // No flip while a pod owes the mirror writes: verify again once they are redone.
        if (after.phase === 'Flip' && pushed.blocked === undefined) {
          const reports = await Promise.all((await pods.list()).map((pod) => pods.report(pod)));
          const debt = reports.reduce((sum, report) => sum + report.debt, 0);
          if (debt > 0) return { ...after, phase: 'Verify', blocked: `${debt} mirror writes to redo` };
        }
        return after;
      }
      case 'Flip':
        return await flip(state, pods, settings);
      case 'Completed':
        return state;
    }
  } catch (error) {
    return { ...state, blocked: message(error) };
  }
}

/** The phases in which pods mirror to the new store and the old one is still the truth. */
const MIRRORED_BEFORE_FLIP = new Set<SwapPhase>(['Backfill', 'Verify', 'Flip']);

/**
 * A pod process that mirrored went away before the flip: what it owed the
 * mirror, or was writing there when it died, is lost with it (a delete among
 * them would bring a task back). The copy starts again, into a fresh
 * generation of the new store, from dual write; the old store is the truth
 * throughout, so nothing a client was told is at risk.
 */
function startOver(state: SwapState, gone: number): SwapState {
  const generation = `g${state.revision + 1}`;
  return {
    ...state,
    phase: 'DualWrite',
    to: { ...state.to, generation },
    plan: undefined,
    instances: [],
    copied: 0,
    total: 0,
    blocked: `${gone} task pod process(es) went away while mirroring: copying again into generation ${generation}`,
  };
}

/**
 * Pushes the phase's plan to every pod (a new revision the first time) and
 * moves on once each has it, and `check` finds nothing missing.
 */
async function confirmed(
  state: SwapState,
  pods: SwapPods,
  settings: SwapSettings,
  check: (report: SwapReport) => string | undefined,
): Promise<SwapState> {
  const deadline = settings.now() + settings.stepTimeoutMs;
  // The plan of this phase: the one already published, or the same at a new revision.
  let plan = state.plan;
  if (!plan || !samePlan(plan, planOf(state, plan.revision, settings.fenceTimeoutMs))) {
    const reports = await Promise.all((await pods.list()).map((pod) => pods.report(pod)));
    const revision = Math.max(state.revision, ...reports.map((report) => report.plan.revision)) + 1;
    plan = planOf(state, revision, settings.fenceTimeoutMs);
    // Published before any pod hears of it: a pod starting from here on starts from it.
    await pods.publish(plan);
  }
  const published = { ...state, revision: plan.revision, plan };
  for (;;) {
    const names = await pods.list();
    const answers = await Promise.all(names.map((pod) => pods.push(pod, plan)));
    const missing = answers
      .map((report, index) =>
        samePlan(report.plan, plan) ? check(report) : `pod ${names[index]} runs revision ${report.plan.revision}`,
      )
      .filter((problem): problem is string => problem !== undefined);
    const seen = plan.mirror
      ? [...new Set([...published.instances, ...answers.map((report) => report.instance).filter(Boolean)])]
      : published.instances;
    if (missing.length === 0) return { ...published, instances: seen, phase: next(state.phase), blocked: undefined };
    if (settings.now() > deadline) return { ...published, instances: seen, blocked: missing.join('; ') };
    await settings.sleep(200);
  }
}

/** Publishes the phase's plan and tells every pod that answers; done whatever the others do. */
async function everyPodTold(state: SwapState, pods: SwapPods, settings: SwapSettings): Promise<SwapState> {
  const quick: SwapSettings = { ...settings, stepTimeoutMs: 0 };
  const told = await confirmed(state, guarded(pods), quick, () => undefined);
  return { ...told, phase: next(state.phase), blocked: undefined };
}

/** `pods` whose calls that fail answer a report of revision -1 (not confirming) instead of failing the step. */
function guarded(pods: SwapPods): SwapPods {
  const silent = (plan: SwapPlan): SwapReport => ({
    instance: '',
    plan: { ...plan, revision: -1 },
    inflight: 0,
    debt: 0,
    loaded: [],
    job: null,
  });
  return {
    ...pods,
    report: (pod) => pods.report(pod).catch(() => silent(planless)),
    push: (pod, plan) => pods.push(pod, plan).catch(() => silent(plan)),
  };
}

const planless: SwapPlan = {
  revision: -1,
  truth: { component: '', generation: '0' },
  mirror: null,
  fenced: false,
  fenceTimeoutMs: 100,
};

const sameRef = (a: StoreRef | null, b: StoreRef | null): boolean =>
  a === b || (a !== null && b !== null && a.component === b.component && a.generation === b.generation);

function samePlan(a: SwapPlan, b: SwapPlan): boolean {
  return a.revision === b.revision && sameRef(a.truth, b.truth) && sameRef(a.mirror, b.mirror) && a.fenced === b.fenced;
}

/** Runs a copier job on the first pod, following it until done or the step's time is up. */
async function runJob(state: SwapState, pods: SwapPods, settings: SwapSettings, kind: SwapJobKind): Promise<SwapState> {
  const deadline = settings.now() + settings.stepTimeoutMs;
  const [pod] = (await pods.list()).sort();
  if (pod === undefined) return { ...state, blocked: 'no task pod is running' };
  const id = `${kind}-${state.revision}-${state.jobs}`;
  let job = await pods.startJob(pod, { id, kind, revision: state.revision });
  while (job.state === 'running' && settings.now() < deadline) {
    await settings.sleep(200);
    job = (await pods.report(pod)).job ?? job;
  }
  // The catch-up walks only what came since verify: it adds to what was walked before.
  const copied = kind === 'catch-up' ? Math.max(state.copied, state.copied + job.walked) : job.walked;
  const progress = { copied, total: Math.max(job.total, copied) };
  if (job.state === 'failed') {
    return { ...state, ...progress, jobs: state.jobs + 1, blocked: `${kind} failed: ${job.error ?? 'unknown'}` };
  }
  if (job.state === 'running') return { ...state, ...progress, blocked: undefined };
  return { ...state, ...progress, jobs: state.jobs + 1, phase: next(state.phase), blocked: undefined };
}

/**
 * The flip: fence every pod (writes held, in-flight ones finished), let the
 * copier catch up with what came since verify, then make the new store the
 * source of truth. If that does not finish well inside the fence's time, the
 * fence is lifted (back to dual write) and the flip tried again at the next
 * step. A flip found half-done (a restarted operator) is completed.
 */
async function flip(state: SwapState, pods: SwapPods, settings: SwapSettings): Promise<SwapState> {
  const flippedState: SwapState = { ...state, phase: 'Flipped' };
  const reports = await Promise.all((await pods.list()).map((pod) => pods.report(pod)));
  if (reports.some((report) => sameRef(report.plan.truth, state.to))) {
    return confirmed(flippedState, pods, settings, () => undefined);
  }
  const started = settings.now();
  const budget = (share: number): SwapSettings => ({
    ...settings,
    stepTimeoutMs: Math.max(0, started + settings.fenceTimeoutMs * share - settings.now()),
  });
  let fenced: SwapState;
  let caughtUp: SwapState;
  try {
    fenced = await confirmed(state, pods, budget(0.3), (report) =>
      report.debt > 0 ? `${report.debt} mirror writes to redo` : undefined,
    );
    if (fenced.phase === 'Flip')
      return await lift(fenced, pods, settings, started, fenced.blocked ?? 'fence not confirmed');
    caughtUp = await runJob({ ...fenced, phase: 'Flip' }, pods, budget(0.7), 'catch-up');
  } catch (error) {
    // A pod that does not answer (gone, or cut off): the others must not stay fenced waiting for it.
    return lift(state, pods, settings, started, message(error));
  }
  if (caughtUp.phase === 'Flip') {
    return lift(caughtUp, pods, settings, started, caughtUp.blocked ?? 'catch-up did not finish in time');
  }
  const flipped = await confirmed({ ...caughtUp, phase: 'Flipped' }, pods, settings, () => undefined);
  const longestFenceMs = Math.max(state.longestFenceMs, settings.now() - started);
  // Confirmed by every pod, Flipped is over too; if not, the next step pushes it again (never back).
  return { ...flipped, phase: flipped.phase === 'Flipped' ? 'Flipped' : 'Finish', longestFenceMs };
}

/** Back to dual write for now; the flip is tried again. */
async function lift(
  state: SwapState,
  pods: SwapPods,
  settings: SwapSettings,
  started: number,
  why: string,
): Promise<SwapState> {
  // A new revision above the fence's, told to every pod that answers at once; one that does not hears it
  // at the next step (or reads it from the ConfigMap when it starts again).
  const back = await confirmed(
    { ...state, phase: 'DualWrite', plan: undefined },
    guarded(pods),
    { ...settings, stepTimeoutMs: 0 },
    () => undefined,
  );
  return {
    ...back,
    phase: 'Flip',
    flipRetries: state.flipRetries + 1,
    longestFenceMs: Math.max(state.longestFenceMs, settings.now() - started),
    blocked: `flip retried: ${why}`,
  };
}

/**
 * Going back on a swap (spec.stateBackend edited back). Before the flip the
 * old store has stayed the source of truth: the pods go back to it alone.
 * Once flipped, and while the old store is still mirrored (Flipped), the swap
 * runs the other way into it, in the generation it kept, so the copier only
 * indexes what was created since. During the flip itself, undefined: the flip
 * is bounded, so the caller waits for it. After it (Finish, Completed) the old
 * store is no longer current: a new swap into a fresh generation.
 */
export function reverseSwap(state: SwapState): SwapState | undefined {
  switch (state.phase) {
    case 'TargetAdded':
    case 'DualWrite':
    case 'Backfill':
    case 'Verify':
      return { ...startSwap(state.from, state.from, state.revision), phase: 'Finish' };
    case 'Flip':
      return undefined;
    case 'Flipped':
      return { ...startSwap(state.to, state.from, state.revision), phase: 'Backfill' };
    case 'Finish':
    case 'Completed':
      return undefined;
  }
}
