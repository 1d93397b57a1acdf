/**
 * The state store dies during a burst of creates and comes back on the same
 * address: requests fail with 503 and Retry-After meanwhile, the service
 * process keeps running and serves again by itself, and afterwards the id
 * index and the task documents in the store agree exactly. Each backend gets
 * a store of its own, so the shared test bed is never disturbed.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StateBackend } from '../../src/api/resource.ts';
import type { Task } from '../../src/service/schemas/task.ts';
import { postgresBinDir } from '../../testbed/harness/prerequisites.ts';
import { startPostgres, type PostgresServer } from '../../testbed/harness/postgres.ts';
import { waitUntil } from '../../testbed/harness/process.ts';
import { startRedis, type RedisServer } from '../../testbed/harness/redis.ts';
import { jsonClient } from '../support/http.ts';
import { allTasks, startTaskServiceStack, type Stores, type TaskServiceStack } from '../support/task-service-stack.ts';

const run = promisify(execFile);
const testbed = inject('testbed');
const PASSWORD = 'outage-store-password';
const WRITERS = 6;

interface Outcome {
  status: number;
  id: string | undefined;
  retryAfter: string | null;
}

/** The store a backend's outage test kills, and how to read its task keys without going through Dapr. */
interface DedicatedStore {
  kill(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
  stores: Stores;
  /** Ids of the task documents the store holds for `appId` (Dapr keys are `<app-id>||task|<id>`). */
  taskIds(appId: string): Promise<string[]>;
}

async function dedicatedRedis(dir: string): Promise<DedicatedStore> {
  let redis: RedisServer = await startRedis(dir, PASSWORD, undefined, true);
  return {
    stores: { redis, postgres: testbed.postgres },
    kill: async () => {
      redis.process.kill('SIGKILL');
      await redis.process.exited;
    },
    restart: async () => {
      redis = await startRedis(dir, PASSWORD, redis.port, true);
    },
    stop: () => redis.stop(),
    taskIds: async (appId) => {
      const { stdout } = await run('redis-cli', [
        ...['-h', redis.host, '-p', String(redis.port), '-a', PASSWORD, '--no-auth-warning'],
        ...['--scan', '--pattern', `${appId}||task|*`],
      ]);
      return stdout
        .split('\n')
        .filter(Boolean)
        .map((key) => key.slice(`${appId}||task|`.length));
    },
  };
}

async function dedicatedPostgres(dir: string): Promise<DedicatedStore> {
  let postgres: PostgresServer = await startPostgres(dir, PASSWORD, undefined, true);
  return {
    stores: { redis: testbed.redis, postgres },
    kill: async () => {
      postgres.process.kill('SIGKILL');
      await postgres.process.exited;
    },
    restart: async () => {
      // Backends of the killed postmaster notice its death and exit; until then the data directory is busy.
      await waitUntil(
        async () => {
          postgres = await startPostgres(dir, PASSWORD, postgres.port, true);
          return true;
        },
        { what: 'PostgreSQL to restart on its port', timeoutMs: 60_000, intervalMs: 500 },
      );
    },
    stop: () => postgres.stop(),
    taskIds: async (appId) => {
      const { stdout } = await run(join(postgresBinDir(), 'psql'), [
        postgres.connectionString,
        ...[
          '-At',
          '-c',
          `SELECT substr(key, ${`${appId}||task|`.length + 1}) FROM state WHERE key LIKE '${appId}||task|%'`,
        ],
      ]);
      return stdout.split('\n').filter(Boolean);
    },
  };
}

const backends: [StateBackend, (dir: string) => Promise<DedicatedStore>][] = [
  ['redis', dedicatedRedis],
  ['postgresql', dedicatedPostgres],
];

describe.each(backends)('a state.%s outage during a burst of writes', (backend, startStore) => {
  let store: DedicatedStore;
  let stack: TaskServiceStack;
  beforeAll(async () => {
    store = await startStore(join(testbed.dir, `outage-${backend}`));
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
    const stored = (await store.taskIds(stack.taskApi.metadata.name)).sort();
    expect(stored).toEqual(listed);
    const acknowledged = outcomes.flatMap((outcome) => (outcome.status === 201 && outcome.id ? [outcome.id] : []));
    expect(listed).toEqual(expect.arrayContaining(acknowledged));
  });
});
