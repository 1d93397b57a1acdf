/**
 * Events are sent in the background, as client-go's event recorder does: a
 * reconcile never waits for one (an Event is for people reading `kubectl
 * describe`, not part of the desired state), and a burst of them cannot slow
 * the operator down. Pending Events are bounded; the oldest is dropped, with a
 * log line, when the API server cannot keep up.
 */
import type { Logger } from 'pino';
import type { TaskApi } from '../api/resource.ts';
import type { KubeClient } from '../kube/client.ts';
import { recordTaskApiEvent } from './taskapi-client.ts';

export type EventType = 'Normal' | 'Warning';

interface PendingEvent {
  taskApi: TaskApi;
  type: EventType;
  reason: string;
  message: string;
}

const MAX_PENDING = 1_000;
/**
 * The same Event for the same object within this window is written once, as
 * client-go's correlator does: two passes that read the cache before it caught
 * up with the status the first one wrote would otherwise both report a transition.
 */
const REPEAT_WINDOW_MS = 10 * 60_000;
/** One at a time, as client-go's broadcaster: a TaskApi's Events are written in the order they happened. */
const SENDERS = 1;

export class EventRecorder {
  private readonly kube: KubeClient;
  private readonly logger: Logger;
  private readonly pending: PendingEvent[] = [];
  private sending = 0;
  private idle: (() => void)[] = [];
  /** Last Event recorded per object uid, with when. */
  private readonly last = new Map<string, { event: string; at: number }>();

  constructor(kube: KubeClient, logger: Logger) {
    this.kube = kube;
    this.logger = logger;
  }

  record(taskApi: TaskApi, type: EventType, reason: string, message: string): void {
    const now = performance.now();
    const event = `${type}/${reason}/${message}`;
    const previous = this.last.get(taskApi.metadata.uid);
    if (previous?.event === event && now - previous.at < REPEAT_WINDOW_MS) return;
    this.last.delete(taskApi.metadata.uid);
    this.last.set(taskApi.metadata.uid, { event, at: now });
    // Oldest first (insertion order): forget what fell out of the window.
    for (const [uid, entry] of this.last) {
      if (now - entry.at < REPEAT_WINDOW_MS) break;
      this.last.delete(uid);
    }
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
        await recordTaskApiEvent(this.kube, event.taskApi, event.type, event.reason, event.message);
      } catch (error) {
        this.logger.warn({ err: error, reason: event.reason }, 'event not recorded');
      }
    }
    this.sending--;
    if (this.sending === 0) for (const resolve of this.idle.splice(0)) resolve();
  }
}
