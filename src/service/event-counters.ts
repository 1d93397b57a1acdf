/**
 * What the subscription route did, counted for people and dashboards: task
 * events by type and answer, and notifications sent. Served at GET /metrics in
 * Prometheus' text format (a handful of counters do not need prom-client).
 */
import type { DeliveryAnswer } from './schemas/event.ts';

export class EventCounters {
  private readonly events = new Map<string, number>();
  private notifications = 0;

  /** `type` is the CloudEvent's type as delivered ("unknown" when there was none). */
  answered(type: string, answer: DeliveryAnswer['status']): void {
    const key = `${type}\u0000${answer}`;
    this.events.set(key, (this.events.get(key) ?? 0) + 1);
  }

  notified(): void {
    this.notifications += 1;
  }

  render(): string {
    const escape = (value: string): string => value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
    const lines = [
      '# HELP taskapi_task_events_total Task events delivered to the subscription route, by type and answer.',
      '# TYPE taskapi_task_events_total counter',
      ...[...this.events.entries()].sort().map(([key, count]) => {
        const [type = '', answer = ''] = key.split('\u0000');
        return `taskapi_task_events_total{type="${escape(type)}",answer="${answer}"} ${count}`;
      }),
      '# HELP taskapi_notifications_sent_total Completed tasks the notification service was told about.',
      '# TYPE taskapi_notifications_sent_total counter',
      `taskapi_notifications_sent_total ${this.notifications}`,
    ];
    return `${lines.join('\n')}\n`;
  }
}
