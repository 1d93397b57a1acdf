/**
 * Counters, gauges and histograms in the Prometheus text format, with the
 * process metrics every exporter has.
 *
 * Written here rather than taken from prom-client: loading prom-client costs
 * about 20 MiB of resident memory, a third of the operator's fixed budget,
 * for the dozen series the operator exports.
 */
import { memoryUsage } from 'node:process';

type Labels = Record<string, string>;

interface MetricOptions {
  name: string;
  help: string;
  labelNames?: readonly string[];
}

const escapeLabel = (value: string): string => value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

function renderLabels(labels: Labels, extra?: [string, string]): string {
  const pairs = Object.entries(labels);
  if (extra) pairs.push(extra);
  return pairs.length === 0 ? '' : `{${pairs.map(([name, value]) => `${name}="${escapeLabel(value)}"`).join(',')}}`;
}

const formatNumber = (value: number): string =>
  Number.isFinite(value) ? String(value) : value > 0 ? '+Inf' : value < 0 ? '-Inf' : 'NaN';

abstract class Metric<Series> {
  readonly name: string;
  readonly help: string;
  private readonly labelNames: readonly string[];
  protected readonly series = new Map<string, { labels: Labels; value: Series }>();
  abstract readonly type: 'counter' | 'gauge' | 'histogram';

  constructor(options: MetricOptions) {
    this.name = options.name;
    this.help = options.help;
    this.labelNames = options.labelNames ?? [];
  }

  protected abstract initial(): Series;

  /** The series for `labels`, created on first use; a label outside labelNames is a programming error. */
  protected at(labels: Labels): Series {
    const key = this.labelNames.map((name) => labels[name] ?? '').join('\u0000');
    let entry = this.series.get(key);
    if (!entry) {
      for (const name of Object.keys(labels)) {
        if (!this.labelNames.includes(name)) throw new Error(`metric ${this.name} has no label ${name}`);
      }
      entry = { labels: { ...labels }, value: this.initial() };
      this.series.set(key, entry);
    }
    return entry.value;
  }

  protected abstract lines(labels: Labels, value: Series): string[];

  render(): string {
    const body = [...this.series.values()].flatMap(({ labels, value }) => this.lines(labels, value));
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`, ...body].join('\n');
  }
}

export class Counter extends Metric<{ value: number }> {
  readonly type = 'counter';
  protected initial() {
    return { value: 0 };
  }
  inc(labels: Labels = {}, amount = 1): void {
    this.at(labels).value += amount;
  }
  protected lines(labels: Labels, series: { value: number }): string[] {
    return [`${this.name}${renderLabels(labels)} ${formatNumber(series.value)}`];
  }
}

export class Gauge extends Metric<{ value: number }> {
  readonly type = 'gauge';
  protected initial() {
    return { value: 0 };
  }
  set(labels: Labels, value: number): void {
    this.at(labels).value = value;
  }
  inc(labels: Labels = {}, amount = 1): void {
    this.at(labels).value += amount;
  }
  dec(labels: Labels = {}, amount = 1): void {
    this.at(labels).value -= amount;
  }
  protected lines(labels: Labels, series: { value: number }): string[] {
    return [`${this.name}${renderLabels(labels)} ${formatNumber(series.value)}`];
  }
}

interface HistogramSeries {
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram extends Metric<HistogramSeries> {
  readonly type = 'histogram';
  private readonly buckets: readonly number[];

  constructor(options: MetricOptions & { buckets: readonly number[] }) {
    super(options);
    this.buckets = [...options.buckets].sort((a, b) => a - b);
  }

  protected initial(): HistogramSeries {
    return { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
  }

  observe(labels: Labels, value: number): void {
    const series = this.at(labels);
    series.counts = series.counts.map((count, index) =>
      value <= (this.buckets[index] ?? Infinity) ? count + 1 : count,
    );
    series.sum += value;
    series.count += 1;
  }

  /** Starts a timer; calling the returned function observes the seconds since. */
  startTimer(labels: Labels): () => void {
    const started = performance.now();
    return () => {
      this.observe(labels, (performance.now() - started) / 1000);
    };
  }

  protected lines(labels: Labels, series: HistogramSeries): string[] {
    return [
      ...this.buckets.map(
        (bound, index) =>
          `${this.name}_bucket${renderLabels(labels, ['le', formatNumber(bound)])} ${series.counts[index] ?? 0}`,
      ),
      `${this.name}_bucket${renderLabels(labels, ['le', '+Inf'])} ${series.count}`,
      `${this.name}_sum${renderLabels(labels)} ${formatNumber(series.sum)}`,
      `${this.name}_count${renderLabels(labels)} ${series.count}`,
    ];
  }
}

export class Registry {
  private readonly metrics: { render(): string }[] = [];

  register<M extends { render(): string }>(metric: M): M {
    this.metrics.push(metric);
    return metric;
  }

  /** The exposition text, process metrics first (sampled now). */
  render(): string {
    return `${[processMetrics(), ...this.metrics.map((metric) => metric.render())].join('\n')}\n`;
  }
}

const START_TIME_SECONDS = Math.round(Date.now() / 1000 - process.uptime());

/** The standard process_* and nodejs_* series, as client libraries name them. */
function processMetrics(): string {
  const cpu = process.cpuUsage();
  const memory = memoryUsage();
  const sample = (type: string, name: string, help: string, value: number) =>
    `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${formatNumber(value)}`;
  return [
    sample('counter', 'process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', cpu.user / 1e6),
    sample('counter', 'process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.', cpu.system / 1e6),
    sample(
      'counter',
      'process_cpu_seconds_total',
      'Total user and system CPU time spent in seconds.',
      (cpu.user + cpu.system) / 1e6,
    ),
    sample(
      'gauge',
      'process_start_time_seconds',
      'Start time of the process since unix epoch in seconds.',
      START_TIME_SECONDS,
    ),
    sample('gauge', 'process_resident_memory_bytes', 'Resident memory size in bytes.', memory.rss),
    sample('gauge', 'nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', memory.heapTotal),
    sample('gauge', 'nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', memory.heapUsed),
    sample('gauge', 'nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', memory.external),
  ].join('\n');
}
