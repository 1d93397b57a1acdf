/**
 * A Redis or PostgreSQL server of a test's own, for tests that kill the store
 * and bring it back on the same address: the shared test bed's servers are
 * never disturbed. Durable, so a killed server comes back with every
 * acknowledged write.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { postgresBinDir } from '../../testbed/harness/prerequisites.ts';
import { startPostgres, type PostgresServer } from '../../testbed/harness/postgres.ts';
import { waitUntil } from '../../testbed/harness/process.ts';
import { startRedis, type RedisServer } from '../../testbed/harness/redis.ts';
import type { TestbedInfo } from '../../testbed/harness/testbed.ts';
import type { Stores } from './task-service-stack.ts';

const run = promisify(execFile);
const PASSWORD = 'dedicated-store-password';

export interface DedicatedStore {
  /** SIGKILL: no goodbye to clients, nothing flushed that was not already. */
  kill(): Promise<void>;
  /** Back on the same address, with what it held. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  /** This store for its backend, the test bed's for the other. */
  stores: Stores;
  /** Ids of the task documents the store holds for the TaskApi (Dapr keys are `<namespace>.<app-id>||task|<id>`). */
  taskIds(namespace: string, appId: string): Promise<string[]>;
}

export async function dedicatedRedis(dir: string, testbed: TestbedInfo): Promise<DedicatedStore> {
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
    taskIds: async (namespace, appId) => {
      const prefix = `${namespace}.${appId}||task|`;
      const { stdout } = await run('redis-cli', [
        ...['-h', redis.host, '-p', String(redis.port), '-a', PASSWORD, '--no-auth-warning'],
        ...['--scan', '--pattern', `${prefix}*`],
      ]);
      return stdout
        .split('\n')
        .filter(Boolean)
        .map((key) => key.slice(prefix.length));
    },
  };
}

export async function dedicatedPostgres(dir: string, testbed: TestbedInfo): Promise<DedicatedStore> {
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
    taskIds: async (namespace, appId) => {
      const prefix = `${namespace}.${appId}||task|`;
      const { stdout } = await run(join(postgresBinDir(), 'psql'), [
        postgres.connectionString,
        ...['-At', '-c', `SELECT substr(key, ${prefix.length + 1}) FROM state WHERE key LIKE '${prefix}%'`],
      ]);
      return stdout.split('\n').filter(Boolean);
    },
  };
}
