/**
 * The controller's work queue, with client-go's semantics:
 * - a key is queued at most once, however many events name it (dedupe);
 * - a key being processed is never handed out again until `done`; an `add`
 *   meanwhile marks it dirty and it is queued again on `done`, so no event is lost
 *   and one key is never reconciled twice at once;
 * - `addRateLimited` delays a key exponentially per failure (with jitter), and
 *   `forget` resets that count once a reconcile succeeds.
 */

import { backoffDelay, type BackoffOptions } from './backoff.ts';

export const DEFAULT_BACKOFF: BackoffOptions = { baseDelayMs: 5, maxDelayMs: 60_000, jitter: 0.1 };

/** Hooks for metrics; the queue itself stays free of any metrics library. */
export interface QueueObserver {
  added?(): void;
  depth?(depth: number): void;
  retried?(): void;
  /** Time a key waited in the queue, and time it was processed, in seconds. */
  waited?(seconds: number): void;
  worked?(seconds: number): void;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Map<string, number>();
  private readonly dirty = new Set<string>();
  private readonly enqueuedAt = new Map<string, number>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private shuttingDown = false;
  private readonly backoff: BackoffOptions;
  private readonly observer: QueueObserver;
  private readonly random: () => number;
  private readonly now: () => number;

  constructor(
    backoff: BackoffOptions = DEFAULT_BACKOFF,
    observer: QueueObserver = {},
    random: () => number = Math.random,
    now: () => number = () => performance.now(),
  ) {
    this.backoff = backoff;
    this.observer = observer;
    this.random = random;
    this.now = now;
  }

  /** Queues `key` unless it is queued already; a key being processed is queued again when done. */
  add(key: string): void {
    if (this.shuttingDown) return;
    this.observer.added?.();
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      this.startProcessing(key, this.now());
      waiter(key);
      return;
    }
    this.queued.add(key);
    this.enqueuedAt.set(key, this.now());
    this.queue.push(key);
    this.observer.depth?.(this.queue.length);
  }

  /** Queues `key` after `delayMs`; an earlier pending delay for the same key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = this.now() + delayMs;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Queues `key` after its next backoff delay: base * 2^failures, capped, plus jitter. */
  addRateLimited(key: string): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    this.observer.retried?.();
    const delay = this.backoffDelay(failures);
    this.addAfter(key, delay);
    return delay;
  }

  backoffDelay(failures: number): number {
    return backoffDelay(this.backoff, failures, this.random);
  }

  /** Clears the failure count of `key` (after a successful reconcile). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  failureCount(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key to process; waits for one. Undefined once the queue is shut down and drained. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.queued.delete(key);
      this.observer.depth?.(this.queue.length);
      this.startProcessing(key, this.enqueuedAt.get(key) ?? this.now());
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks `key` processed; queues it again if it was added meanwhile. */
  done(key: string): void {
    const started = this.processing.get(key);
    if (started !== undefined) this.observer.worked?.((this.now() - started) / 1000);
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  get length(): number {
    return this.queue.length;
  }

  get inFlight(): number {
    return this.processing.size;
  }

  /** Stops handing out keys: waiting workers get undefined; queued and delayed keys are dropped. */
  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.queue.length = 0;
    this.queued.clear();
    this.observer.depth?.(0);
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }

  private startProcessing(key: string, enqueuedAt: number): void {
    this.enqueuedAt.delete(key);
    const now = this.now();
    this.observer.waited?.((now - enqueuedAt) / 1000);
    this.processing.set(key, now);
  }
}
