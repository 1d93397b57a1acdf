/**
 * Task events published after the answer, not before it. A failed publish is
 * logged, never answered as a failure (the task is stored; a client retrying
 * would write it twice), so a client waiting for the publish learns nothing:
 * it only pays one more sidecar round trip per write. The Announcer sends each
 * event in the background instead, in order per task (a task's created event
 * goes out before its completed one), and
 *
 * - keeps at most `limit` events waiting: past that, the write that announces
 *   waits for its own publish, so a slow pub/sub slows writers down rather than
 *   filling memory;
 * - is drained when the service stops (Fastify's onClose, before the sidecar
 *   client closes), so a graceful stop loses none. A process killed outright
 *   loses the events of its last moments, as it would lose them between a
 *   write and its publish anyway.
 */
import type { FastifyBaseLogger } from 'fastify';
import { isServiceError } from './errors.ts';
import { KeyedQueue } from './keyed-queue.ts';
import { LOG } from './logging.ts';
import type { EventPublisher } from './ports.ts';
import type { TaskEventType } from './schemas/event.ts';
import type { Task } from './schemas/task.ts';

/** Events waiting at most before writers wait for their own: a few seconds of writes at full speed, a few MB. */
export const ANNOUNCE_LIMIT = 1024;

export class Announcer {
  private readonly events: EventPublisher;
  private readonly limit: number;
  private readonly order = new KeyedQueue();
  private readonly pending = new Set<Promise<void>>();

  constructor(events: EventPublisher, limit = ANNOUNCE_LIMIT) {
    this.events = events;
    this.limit = limit;
  }

  /** Queues `type` for `task`; resolves at once, or once published when `limit` events already wait. */
  async announce(type: TaskEventType, task: Task, log: FastifyBaseLogger): Promise<void> {
    const full = this.pending.size >= this.limit;
    const sent = this.order.run(task.id, () => this.publish(type, task, log));
    this.pending.add(sent);
    void sent.finally(() => this.pending.delete(sent));
    if (full) await sent;
  }

  /** Resolves once every queued event is published (or its failure logged). */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.all(this.pending);
  }

  /** How many events wait to be published. */
  get waiting(): number {
    return this.pending.size;
  }

  private async publish(type: TaskEventType, task: Task, log: FastifyBaseLogger): Promise<void> {
    try {
      await this.events.publish(type, task);
    } catch (error) {
      log.error(
        { code: isServiceError(error) ? error.code : 'internal', err: error, taskId: task.id, type },
        LOG.publishFailed,
      );
    }
  }
}
