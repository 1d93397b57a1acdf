/**
 * The TaskApi controller: informers feed keys into the work queue, workers run
 * reconcile for one key at a time each, several keys at once; failures are
 * retried with per-key backoff and a periodic resync re-queues everything.
 */
import { TokenSecrets } from './control-token.ts';
import { SWAP_SETTINGS } from './migration.ts';
import type { Logger } from 'pino';
import { EventRecorder } from './events.ts';
import { Index, Informer } from '../kube/informers.ts';
import { CHILD_KINDS, TASKAPI_KIND } from './kinds.ts';
import { MANAGED_SELECTOR } from './names.ts';
import type { KubeClient } from '../kube/client.ts';
import { CONTROLLER_NAME, type OperatorMetrics } from './metrics.ts';
import { WorkQueue } from '../kube/queue.ts';
import { reconcile, TerminalError, type ReconcileContext } from './reconcile.ts';
import { StaleStatus } from './taskapi-client.ts';
import type { BuildSettings } from './resources/deployment.ts';
import { VerifiedPasses } from './verified.ts';
import { childSnapshot, ownerKey, taskApiSnapshot, type ChildSnapshot, type TaskApiSnapshot } from './snapshot.ts';

export interface ControllerOptions {
  /** Keys reconciled at once. */
  concurrency: number;
  /** Every TaskApi is re-queued this often, whatever happened. */
  resyncPeriodMs: number;
}

export class Controller {
  private readonly queue: WorkQueue;
  private readonly taskApis: Informer<TaskApiSnapshot>;
  private readonly children: Map<string, Informer<ChildSnapshot>>;
  private readonly context: ReconcileContext;
  private readonly events: EventRecorder;
  private readonly options: ControllerOptions;
  private readonly metrics: OperatorMetrics;
  private readonly logger: Logger;
  private workers: Promise<void>[] = [];
  private resyncTimer: NodeJS.Timeout | undefined;
  private synced = false;

  constructor(
    kube: KubeClient,
    settings: BuildSettings,
    options: ControllerOptions,
    metrics: OperatorMetrics,
    logger: Logger,
  ) {
    this.options = options;
    this.metrics = metrics;
    this.logger = logger;
    this.queue = new WorkQueue(undefined, metrics.queueObserver());
    this.taskApis = new Informer(kube, TASKAPI_KIND, taskApiSnapshot, logger);
    const owned = new Index<ChildSnapshot>(ownerKey);
    this.children = new Map(
      CHILD_KINDS.map((info) => [
        info.kind,
        new Informer(kube, info, childSnapshot, logger, { labelSelector: MANAGED_SELECTOR, index: owned }),
      ]),
    );
    this.events = new EventRecorder(kube, logger);
    this.context = {
      kube,
      events: this.events,
      verified: new VerifiedPasses(),
      taskApis: this.taskApis,
      children: this.children,
      owned,
      settings,
      tokens: new TokenSecrets(),
      swapSettings: SWAP_SETTINGS,
      now: () => new Date(),
    };
  }

  /** True once every cache holds its first list. */
  get hasSynced(): boolean {
    return this.synced;
  }

  async start(): Promise<void> {
    this.taskApis.onEvent(({ metadata }) => {
      this.queue.add(`${metadata.namespace}/${metadata.name}`);
    });
    for (const informer of this.children.values()) {
      informer.onEvent(({ metadata, owner }) => {
        if (owner) this.queue.add(`${metadata.namespace}/${owner}`);
      });
    }
    await Promise.all([this.taskApis.start(), ...[...this.children.values()].map((informer) => informer.start())]);
    this.synced = true;
    this.resyncTimer = setInterval(() => {
      this.resync();
    }, this.options.resyncPeriodMs);
    this.metrics.maxConcurrentReconciles.set({ controller: CONTROLLER_NAME }, this.options.concurrency);
    this.workers = Array.from({ length: this.options.concurrency }, () => this.work());
    this.logger.info({ concurrency: this.options.concurrency }, 'controller started');
  }

  /** Queues every TaskApi in the cache. */
  resync(): void {
    for (const { metadata } of this.taskApis.list()) this.queue.add(`${metadata.namespace}/${metadata.name}`);
  }

  /** Stops taking work, lets in-flight reconciles finish, then stops watching. */
  async stop(): Promise<void> {
    clearInterval(this.resyncTimer);
    this.queue.shutDown();
    await Promise.all(this.workers);
    await this.events.flush();
    await Promise.all([this.taskApis.stop(), ...[...this.children.values()].map((informer) => informer.stop())]);
    this.logger.info('controller stopped');
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      this.metrics.activeWorkers.inc({ controller: CONTROLLER_NAME });
      try {
        await this.process(key);
      } finally {
        this.metrics.activeWorkers.dec({ controller: CONTROLLER_NAME });
        this.queue.done(key);
      }
    }
  }

  private async process(key: string): Promise<void> {
    const labels = { controller: CONTROLLER_NAME };
    const stopTimer = this.metrics.reconcileTime.startTimer(labels);
    try {
      const result = await reconcile(this.context, key);
      this.queue.forget(key);
      if (result.requeueAfterMs !== undefined) {
        this.queue.addAfter(key, result.requeueAfterMs);
        this.metrics.reconcileTotal.inc({ ...labels, result: 'requeue_after' });
      } else {
        this.metrics.reconcileTotal.inc({ ...labels, result: 'success' });
      }
    } catch (error) {
      if (error instanceof StaleStatus) {
        // The cache had not caught up with the last status write yet: not a failure, it is milliseconds behind.
        this.metrics.reconcileTotal.inc({ ...labels, result: 'stale' });
        const retryInMs = Math.round(this.queue.addRateLimited(key));
        this.logger.debug({ key, retryInMs }, 'read an older status than the stored one; retrying');
        return;
      }
      this.metrics.reconcileErrors.inc(labels);
      this.metrics.reconcileTotal.inc({ ...labels, result: 'error' });
      if (error instanceof TerminalError) {
        // Retrying cannot help; a change of the TaskApi or the next resync queues the key again.
        this.metrics.terminalErrors.inc(labels);
        this.queue.forget(key);
        this.logger.warn(
          { key, reason: error.reason, err: error },
          'reconcile failed; not retried until the TaskApi changes or the next resync',
        );
      } else {
        const retryInMs = Math.round(this.queue.addRateLimited(key));
        this.logger.warn({ key, err: error, retryInMs }, 'reconcile failed; retrying');
      }
    } finally {
      stopTimer();
    }
  }
}
