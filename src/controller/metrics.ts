/**
 * Prometheus metrics under controller-runtime's names, so dashboards and alerts
 * written for Go operators work unchanged.
 */
import { Counter, Gauge, Histogram, Registry } from './prometheus.ts';
import type { QueueObserver } from './queue.ts';

export const CONTROLLER_NAME = 'taskapi';

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconcileTotal = this.registry.register(
    new Counter({
      name: 'controller_runtime_reconcile_total',
      help: 'Total number of reconciliations per controller',
      labelNames: ['controller', 'result'],
    }),
  );
  readonly reconcileErrors = this.registry.register(
    new Counter({
      name: 'controller_runtime_reconcile_errors_total',
      help: 'Total number of reconciliation errors per controller',
      labelNames: ['controller'],
    }),
  );
  readonly terminalErrors = this.registry.register(
    new Counter({
      name: 'controller_runtime_terminal_reconcile_errors_total',
      help: 'Total number of terminal reconciliation errors per controller',
      labelNames: ['controller'],
    }),
  );
  readonly reconcileTime = this.registry.register(
    new Histogram({
      name: 'controller_runtime_reconcile_time_seconds',
      help: 'Length of time per reconciliation per controller',
      labelNames: ['controller'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    }),
  );
  readonly maxConcurrentReconciles = this.registry.register(
    new Gauge({
      name: 'controller_runtime_max_concurrent_reconciles',
      help: 'Maximum number of concurrent reconciles per controller',
      labelNames: ['controller'],
    }),
  );
  readonly activeWorkers = this.registry.register(
    new Gauge({
      name: 'controller_runtime_active_workers',
      help: 'Number of currently used workers per controller',
      labelNames: ['controller'],
    }),
  );
  readonly leader = this.registry.register(
    new Gauge({
      name: 'leader_election_master_status',
      help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master',
      labelNames: ['name'],
    }),
  );
  readonly writes = this.registry.register(
    new Counter({
      name: 'taskapi_operator_api_writes_total',
      help: 'Writes the operator sent to the API server, by verb and kind',
      labelNames: ['verb', 'kind'],
    }),
  );
  private readonly queueDepth = this.registry.register(
    new Gauge({
      name: 'workqueue_depth',
      help: 'Current depth of workqueue',
      labelNames: ['name', 'controller'],
    }),
  );
  private readonly queueAdds = this.registry.register(
    new Counter({
      name: 'workqueue_adds_total',
      help: 'Total number of adds handled by workqueue',
      labelNames: ['name', 'controller'],
    }),
  );
  private readonly queueRetries = this.registry.register(
    new Counter({
      name: 'workqueue_retries_total',
      help: 'Total number of retries handled by workqueue',
      labelNames: ['name', 'controller'],
    }),
  );
  private readonly queueLatency = this.registry.register(
    new Histogram({
      name: 'workqueue_queue_duration_seconds',
      help: 'How long in seconds an item stays in workqueue before being requested',
      labelNames: ['name', 'controller'],
      buckets: [1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10, 100],
    }),
  );
  private readonly workDuration = this.registry.register(
    new Histogram({
      name: 'workqueue_work_duration_seconds',
      help: 'How long in seconds processing an item from workqueue takes',
      labelNames: ['name', 'controller'],
      buckets: [1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10, 100],
    }),
  );

  queueObserver(): QueueObserver {
    const labels = { name: CONTROLLER_NAME, controller: CONTROLLER_NAME };
    return {
      added: () => {
        this.queueAdds.inc(labels);
      },
      depth: (depth) => {
        this.queueDepth.set(labels, depth);
      },
      retried: () => {
        this.queueRetries.inc(labels);
      },
      waited: (seconds) => {
        this.queueLatency.observe(labels, seconds);
      },
      worked: (seconds) => {
        this.workDuration.observe(labels, seconds);
      },
    };
  }
}
