import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { backoffDelay } from '../../src/kube/backoff.ts';
import { WorkQueue } from '../../src/kube/queue.ts';

describe('WorkQueue', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('hands out a key once however many times it was added', async () => {
    const queue = new WorkQueue();
    queue.add('ns/a');
    queue.add('ns/b');
    queue.add('ns/a');
    expect(queue.length).toBe(2);
    expect(await queue.get()).toBe('ns/a');
    expect(await queue.get()).toBe('ns/b');
    expect(queue.length).toBe(0);
  });

  it('never hands out a key that is being processed; an add meanwhile queues it again on done', async () => {
    const queue = new WorkQueue();
    queue.add('ns/a');
    const key = await queue.get();
    queue.add('ns/a');
    expect(queue.length).toBe(0);
    queue.add('ns/b');
    expect(await queue.get()).toBe('ns/b');

    queue.done(key ?? '');
    expect(queue.length).toBe(1);
    expect(await queue.get()).toBe('ns/a');
  });

  it('wakes a waiting worker when a key arrives', async () => {
    const queue = new WorkQueue();
    const waiting = queue.get();
    queue.add('ns/a');
    expect(await waiting).toBe('ns/a');
    expect(queue.inFlight).toBe(1);
  });

  it('backs off exponentially per key, capped, with bounded jitter, and forget resets it', () => {
    const queue = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 1_000, jitter: 0.5 }, {}, () => 1);
    const delays = Array.from({ length: 9 }, () => queue.addRateLimited('ns/a'));
    expect(delays).toEqual([15, 30, 60, 120, 240, 480, 960, 1_500, 1_500]);
    expect(queue.addRateLimited('ns/b')).toBe(15);
    queue.forget('ns/a');
    expect(queue.failureCount('ns/a')).toBe(0);
    expect(queue.addRateLimited('ns/a')).toBe(15);

    const noJitter = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 1_000, jitter: 0.5 }, {}, () => 0);
    expect(noJitter.addRateLimited('ns/a')).toBe(10);
  });

  it('queues a rate-limited key only after its delay', async () => {
    const queue = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 1_000, jitter: 0 });
    queue.addRateLimited('ns/a');
    expect(queue.length).toBe(0);
    await vi.advanceTimersByTimeAsync(99);
    expect(queue.length).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(queue.length).toBe(1);
  });

  it('keeps the earliest of several delayed adds of one key', async () => {
    const queue = new WorkQueue();
    queue.addAfter('ns/a', 500);
    queue.addAfter('ns/a', 100);
    queue.addAfter('ns/a', 300);
    await vi.advanceTimersByTimeAsync(100);
    expect(queue.length).toBe(1);
    await queue.get();
    queue.done('ns/a');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(queue.length).toBe(0);
  });

  it('on shut down releases waiting workers and drops pending keys', async () => {
    const queue = new WorkQueue();
    const waiting = queue.get();
    queue.shutDown();
    expect(await waiting).toBeUndefined();
    queue.add('ns/a');
    queue.addAfter('ns/b', 10);
    await vi.advanceTimersByTimeAsync(20);
    expect(await queue.get()).toBeUndefined();
  });
});

describe('backoff', () => {
  const options = { baseDelayMs: 5, maxDelayMs: 1_000, jitter: 0.1 };
  it.each([
    [0, 0, 5],
    [1, 0, 10],
    [3, 0, 40],
    [8, 0, 1_000],
    [40, 0, 1_000],
    [3, 0.5, 42],
    [8, 0.999, 1_099.9],
  ])('retry %i with random %f waits %f ms', (attempt, random, expected) => {
    expect(backoffDelay(options, attempt, () => random)).toBeCloseTo(expected, 6);
  });
});
