/**
 * Events are sent in the background, as client-go's event recorder does: a
 * reconcile never waits for one (an Event is for people reading `kubectl
 * describe`, not part of the desired state), and a burst of them cannot slow
 * the operator down. Pending Events are bounded; the oldest is dropped, with a
 * log line, when the API server cannot keep up.
 */
import type { Logger } from 'pino';
import type { TaskApi } from '../api/resource.ts';
import type { KubeClient } from './kube.ts';

export type EventType = 'Normal' | 'Warning';

interface PendingEvent {
  taskApi: TaskApi;
  type: EventType;
  reason: string;
  message: string;
}

const MAX_PENDING = 1_000;
/** Events in flight at once: enough to keep up, few enough to leave the API server to reconciles. */
const SENDERS = 2;

export class EventRecorder {
  private readonly kube: KubeClient;
  private readonly logger: Logger;
  private readonly pending: PendingEvent[] = [];
  private sending = 0;
  private idle: (() => void)[] = [];

  constructor(kube: KubeClient, logger: Logger) {
    this.kube = kube;
    this.logger = logger;
  }

  record(taskApi: TaskApi, type: EventType, reason: string, message: string): void {
    if (this.pending.length >= MAX_PENDING) {
      const dropped = this.pending.shift();
      this.logger.warn({ reason: dropped?.reason }, 'event dropped: too many pending');
    }
    this.pending.push({ taskApi, type, reason, message });
    if (this.sending < SENDERS) void this.send();
  }

  /** Resolves once every pending Event was sent (or failed). */
  flush(): Promise<void> {
    if (this.sending === 0 && this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private async send(): Promise<void> {
    this.sending++;
    for (let event = this.pending.shift(); event; event = this.pending.shift()) {
      try {
        await this.kube.recordEvent(event.taskApi, event.type, event.reason, event.message);
      } catch (error) {
        this.logger.warn({ err: error, reason: event.reason }, 'event not recorded');
      }
    }
    this.sending--;
    if (this.sending === 0) for (const resolve of this.idle.splice(0)) resolve();
  }
}
