/**
 * Prometheus metrics under controller-runtime's names, so dashboards and alerts
 * written for Go operators work unchanged.
 */
import { Counter, Gauge, Histogram, Registry } from '../kube/prometheus.ts';
import type { QueueObserver } from '../kube/queue.ts';

export const CONTROLLER_NAME = 'taskapi';

export class OperatorMetrics {
  readonly registry = new Registry();

  private counter(name: string, help: string, labelNames: string[]): Counter {
    return this.registry.register(new Counter({ name, help, labelNames }));
  }

  private gauge(name: string, help: string, labelNames: string[]): Gauge {
    return this.registry.register(new Gauge({ name, help, labelNames }));
  }

  private histogram(name: string, help: string, labelNames: string[], buckets: number[]): Histogram {
    return this.registry.register(new Histogram({ name, help, labelNames, buckets }));
  }

  readonly reconcileTotal = this.counter(
    'controller_runtime_reconcile_total',
    'Total number of reconciliations per controller',
    ['controller', 'result'],
  );
  readonly reconcileErrors = this.counter(
    'controller_runtime_reconcile_errors_total',
    'Total number of reconciliation errors per controller',
    ['controller'],
  );
  readonly terminalErrors = this.counter(
    'controller_runtime_terminal_reconcile_errors_total',
    'Total number of terminal reconciliation errors per controller',
    ['controller'],
  );
  readonly reconcileTime = this.histogram(
    'controller_runtime_reconcile_time_seconds',
    'Length of time per reconciliation per controller',
    ['controller'],
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  );
  readonly maxConcurrentReconciles = this.gauge(
    'controller_runtime_max_concurrent_reconciles',
    'Maximum number of concurrent reconciles per controller',
    ['controller'],
  );
  readonly activeWorkers = this.gauge(
    'controller_runtime_active_workers',
    'Number of currently used workers per controller',
    ['controller'],
  );
  readonly leader = this.gauge(
    'leader_election_master_status',
    'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master',
    ['name'],
  );
  readonly writes = this.counter(
    'taskapi_operator_api_writes_total',
    'Writes the operator sent to the API server, by verb and kind',
    ['verb', 'kind'],
  );
  private readonly queueDepth = this.gauge('workqueue_depth', 'Current depth of workqueue', ['name', 'controller']);
  private readonly queueAdds = this.counter('workqueue_adds_total', 'Total number of adds handled by workqueue', [
    'name',
    'controller',
  ]);
  private readonly queueRetries = this.counter(
    'workqueue_retries_total',
    'Total number of retries handled by workqueue',
    ['name', 'controller'],
  );
  private readonly queueLatency = this.histogram(
    'workqueue_queue_duration_seconds',
    'How long in seconds an item stays in workqueue before being requested',
    ['name', 'controller'],
    [1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10, 100],
  );
  private readonly workDuration = this.histogram(
    'workqueue_work_duration_seconds',
    'How long in seconds processing an item from workqueue takes',
    ['name', 'controller'],
    [1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10, 100],
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
