/**
 * The state store dies during a burst of creates and comes back on the same
 * address: requests fail with 503 and Retry-After meanwhile, the service
 * process keeps running and serves again by itself, and afterwards the id
 * index and the task documents in the store agree exactly; a listing right
 * after the store is back answers every task or 503, never fewer. Each backend gets
 * a store of its own, so the shared test bed is never disturbed.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StateBackend } from '../../src/api/resource.ts';
import type { Task } from '../../src/service/schemas/task.ts';
import { waitUntil } from '../../testbed/harness/process.ts';
import type { TestbedInfo } from '../../testbed/harness/testbed.ts';
import { dedicatedPostgres, dedicatedRedis, type DedicatedStore } from '../support/dedicated-store.ts';
import { jsonClient } from '../support/http.ts';
import { allTasks, startTaskServiceStack, type TaskServiceStack } from '../support/task-service-stack.ts';

const testbed = inject('testbed');
const WRITERS = 6;

interface Outcome {
  status: number;
  id: string | undefined;
  retryAfter: string | null;
}

const backends: [StateBackend, (dir: string, testbed: TestbedInfo) => Promise<DedicatedStore>][] = [
  ['redis', dedicatedRedis],
  ['postgresql', dedicatedPostgres],
];

describe.each(backends)('a state.%s outage during a burst of writes', (backend, startStore) => {
  let store: DedicatedStore;
  let stack: TaskServiceStack;
  beforeAll(async () => {
    store = await startStore(join(testbed.dir, `outage-${backend}`), testbed);
    stack = await startTaskServiceStack(testbed, { name: `outage-${backend}`, backend, stores: store.stores });
  });
  afterAll(async () => {
    await stack.stop();
    await store.stop();
  });

  it('answers 503 with Retry-After, recovers without a restart, and leaves index and documents agreeing', async () => {
    const api = jsonClient(stack.url);
    const outcomes: Outcome[] = [];
    let bursting = true;
    const writer = async (): Promise<void> => {
      while (bursting) {
        const response = await api.request<Partial<Task>>('POST', '/tasks', { title: 'burst' });
        outcomes.push({
          status: response.status,
          id: response.body.id,
          retryAfter: response.headers.get('retry-after'),
        });
        if (response.status !== 201) await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    const created = (): number => outcomes.filter((outcome) => outcome.status === 201).length;
    const writers = Array.from({ length: WRITERS }, writer);
    try {
      await waitUntil(() => Promise.resolve(created() >= 30), {
        what: '30 creates before the outage',
        timeoutMs: 30_000,
      });
      await store.kill();
      await waitUntil(() => Promise.resolve(outcomes.filter((outcome) => outcome.status === 503).length >= 20), {
        what: 'writes to fail with 503 while the store is down',
        timeoutMs: 30_000,
      });
      const beforeRestart = created();
      await store.restart();
      await waitUntil(() => Promise.resolve(created() >= beforeRestart + 30), {
        what: 'writes to succeed again once the store is back',
        timeoutMs: 60_000,
      });
    } finally {
      bursting = false;
      await Promise.all(writers);
    }

    expect(stack.process.exitedWith).toBeUndefined();
    const failed = outcomes.filter((outcome) => outcome.status !== 201);
    expect(failed.length).toBeGreaterThan(0);
    for (const outcome of failed) {
      expect(outcome.status).toBe(503);
      expect(outcome.retryAfter).toBe('1');
    }

    const listed = (await allTasks(api, 100)).map((task) => task.id).sort();
    const { namespace, name } = stack.taskApi.metadata;
    const stored = (await store.taskIds(namespace, name)).sort();
    expect(stored).toEqual(listed);
    const acknowledged = outcomes.flatMap((outcome) => (outcome.status === 201 && outcome.id ? [outcome.id] : []));
    expect(listed).toEqual(expect.arrayContaining(acknowledged));
  });

  it('right after the store is back, a listing answers every task or 503, never fewer tasks', async () => {
    const api = jsonClient(stack.url);
    const before = (await allTasks(api, 100)).length;
    // Every pooled connection of daprd's store in use, then the store killed and back before any is retired.
    await Promise.all(Array.from({ length: 8 }, () => allTasks(api, 100)));
    await store.kill();
    await store.restart();
    const answers: string[] = [];
    for (let round = 0; round < 10; round++) {
      answers.push(
        await allTasks(api, 100).then(
          (tasks) => String(tasks.length),
          (error: unknown) => (error instanceof Error ? error.message : String(error)),
        ),
      );
    }
    console.log(`${backend}: ${before} tasks; listings right after the restart: ${answers.join(' | ')}`);
    for (const answer of answers) expect([String(before), 'GET /tasks answered 503']).toContain(answer);
    expect(answers.at(-1)).toBe(String(before));
  });
});
