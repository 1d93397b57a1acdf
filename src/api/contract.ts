/**
 * The contract between the operator and the task service, in one place both
 * sides import: the environment through which the service learns its Dapr
 * component names (never hosts or passwords), the route Dapr delivers task
 * events to, the events' types, and the notification service's method.
 */

/** Environment variables the operator sets on the task service's container. */
export const SERVICE_ENV = {
  appPort: 'APP_PORT',
  stateStore: 'STATE_STORE_NAME',
  /** The layout generation of the tasks in that store ('0' unless a swap built them). */
  stateGeneration: 'STATE_STORE_GENERATION',
  pubsub: 'PUBSUB_NAME',
  topic: 'PUBSUB_TOPIC',
  secretStore: 'SECRET_STORE_NAME',
  notificationAppId: 'NOTIFICATION_APP_ID',
  apiTokenSecret: 'API_TOKEN_SECRET_NAME',
  apiTokenKey: 'API_TOKEN_SECRET_KEY',
  /** A file holding the SwapPlan pods start in (the operator's ConfigMap, mounted); absent: the state store alone. */
  swapPlanFile: 'SWAP_PLAN_FILE',
  /** The bearer token the operator presents on SWAP_ROUTE; without one the route refuses every call. */
  controlToken: 'CONTROL_TOKEN',
  /**
   * Dapr's app token (`dapr.io/app-token-secret`): daprd sends it in the
   * `dapr-api-token` header on every call to the app; the routes only daprd
   * calls refuse a call without it. Unset: those routes take any caller.
   */
  appToken: 'APP_API_TOKEN',
  /** Dapr's API token (`dapr.io/api-token-secret`): the SDK sends it to daprd, which refuses a call without it. */
  daprApiToken: 'DAPR_API_TOKEN',
  /** The configuration store Component of spec.settings (src/service/settings.ts); unset: the defaults, fixed. */
  settingsStore: 'SETTINGS_STORE_NAME',
  /** The overdue sweep's cron binding (spec.overdueSweep): a pod is not ready before its sidecar has loaded it. */
  overdueSweepBinding: 'OVERDUE_SWEEP_BINDING',
} as const;

/** The route the task service serves task events on; the operator's Subscription sends them there. */
export const TASK_EVENTS_ROUTE = '/events/task';

/** The CloudEvent types the task service publishes on the TaskApi's topic. */
export const TASK_EVENT_TYPES = ['task.created', 'task.completed', 'task.deleted', 'task.due', 'task.overdue'] as const;

/** The route the overdue sweep's cron binding (spec.overdueSweep) posts to, each time its schedule fires. */
export const OVERDUE_SWEEP_ROUTE = '/bindings/overdue-sweep';
export type TaskEventType = (typeof TASK_EVENT_TYPES)[number];

/** The notification service's method (its route) that completed tasks are posted to, by Dapr service invocation. */
export const NOTIFICATIONS_METHOD = 'notifications';

/** Where a task service keeps its tasks: a Dapr state Component, and the layout generation within it. */
export interface StoreRef {
  component: string;
  /** '0' for a store's first layout; `g<n>` for one a swap built (docs/swap.md). */
  generation: string;
}

/**
 * What every task pod runs in during a swap of stores, set by the operator
 * (PUT SWAP_ROUTE, and the mounted file new pods start from). A pod applies a
 * plan only if its revision is higher than the one it runs, and acknowledges
 * it by answering: for a fence, once its writes in flight have finished.
 */
export interface SwapPlan {
  revision: number;
  /** The source of truth: reads, and every write first. */
  truth: StoreRef;
  /** Every acknowledged write is also applied here (a tombstone for a delete); null outside a swap. */
  mirror: StoreRef | null;
  /** Writes wait (up to fenceTimeoutMs, then 503 with Retry-After) until the next plan. */
  fenced: boolean;
  fenceTimeoutMs: number;
}

/** The copier's work, run by one pod at the operator's request, from truth into mirror. */
export const SWAP_JOB_KINDS = ['backfill', 'verify', 'catch-up'] as const;
export type SwapJobKind = (typeof SWAP_JOB_KINDS)[number];

export interface SwapJobStatus {
  /** Chosen by the operator: asking again with the same id follows the same job. */
  id: string;
  kind: SwapJobKind;
  /** The plan revision it runs under. */
  revision: number;
  state: 'running' | 'done' | 'failed';
  /** Index entries walked so far, and about how many the source holds. */
  walked: number;
  total: number;
  /** Tasks written into the mirror (backfill), or found different and fixed (verify, catch-up). */
  copied: number;
  mismatches: number;
  error: string | undefined;
}

/** A pod's answer on SWAP_ROUTE. */
export interface SwapReport {
  /** Made at process start: a restarted process answers with another. */
  instance: string;
  plan: SwapPlan;
  /** Writes in flight right now. */
  inflight: number;
  /** Writes whose mirroring failed and has not been redone yet; no flip while any is left. */
  debt: number;
  /** State Components its sidecar has loaded. */
  loaded: string[];
  job: SwapJobStatus | null;
}

/** The route through which the operator drives a task pod through a swap (bearer CONTROL_TOKEN). */
export const SWAP_ROUTE = '/internal/swap';
/** POST { component }: reads a key through that state Component; 200 when the store behind it answers. */
export const SWAP_PROBE_ROUTE = '/internal/swap/probe';
/** POST { id, kind, revision }: starts a copier job in that pod. */
export const SWAP_JOB_ROUTE = '/internal/swap/job';
