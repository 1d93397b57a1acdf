/**
 * The whole test bed in one call: the Kubernetes control plane (with kwok and
 * Dapr's CRDs), a redis-server, a PostgreSQL cluster and Dapr's scheduler, each on free loopback
 * ports in one temporary directory. daprd instances are started per test
 * against resources folders of their own (see daprd.ts).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane, type ControlPlane } from './controlplane.ts';
import { startPostgres, type PostgresServer } from './postgres.ts';
import { describeLogs, type ManagedProcess } from './process.ts';
import { startRedis, type RedisServer } from './redis.ts';
import { startScheduler, type SchedulerServer } from './scheduler.ts';

export interface Testbed {
  dir: string;
  controlPlane: ControlPlane;
  redis: RedisServer;
  postgres: PostgresServer;
  /** Dapr's scheduler, which every daprd of the test bed reaches for the Jobs API. */
  scheduler: SchedulerServer;
  /** Seconds each part took to start. */
  startupSeconds: Record<'controlPlane' | 'redis' | 'postgres' | 'scheduler', number>;
  /** Last lines of every component's log. */
  logs(lines?: number): string;
  stop(): Promise<void>;
}

/** What tests need to reach the test bed; plain data, passed from the global setup to test workers. */
export interface TestbedInfo {
  dir: string;
  kubeconfig: string;
  server: string;
  nodeName: string;
  redis: { host: string; port: number; address: string; password: string };
  postgres: { host: string; port: number; user: string; password: string; database: string; connectionString: string };
  scheduler: { address: string };
}

export async function startTestbed(options: { keepDir?: boolean } = {}): Promise<Testbed> {
  const dir = mkdtempSync(join(tmpdir(), 'taskapi-testbed-'));
  // Traversable (not listable) by others: as root, PostgreSQL runs as its own user.
  chmodSync(dir, 0o711);
  const stoppers: (() => Promise<void>)[] = [];
  const stop = async (): Promise<void> => {
    for (const stopPart of stoppers.reverse()) await stopPart();
    if (!options.keepDir) rmSync(dir, { recursive: true, force: true });
  };
  const timed = async <T>(start: () => Promise<T>): Promise<[T, number]> => {
    const started = performance.now();
    const part = await start();
    return [part, (performance.now() - started) / 1000];
  };
  // Each part registers its stop as soon as it is up, so a failure anywhere stops the rest.
  const started = <T extends { stop(): Promise<void> }>(part: [T, number]): [T, number] => {
    stoppers.push(() => part[0].stop());
    return part;
  };
  // The stores start while the control plane comes up; they are independent.
  const parts = [
    timed(() => startControlPlane(join(dir, 'cluster'))).then(started),
    timed(() => startRedis(join(dir, 'redis'), randomBytes(12).toString('hex'))).then(started),
    timed(() => startPostgres(join(dir, 'postgres'), randomBytes(12).toString('hex'))).then(started),
    timed(() => startScheduler(join(dir, 'scheduler'))).then(started),
  ] as const;
  try {
    const [
      [controlPlane, controlPlaneSeconds],
      [redis, redisSeconds],
      [postgres, postgresSeconds],
      [scheduler, schedulerSeconds],
    ] = await Promise.all(parts);
    const processes: ManagedProcess[] = [...controlPlane.processes, redis.process, postgres.process, scheduler.process];
    return {
      dir,
      controlPlane,
      redis,
      postgres,
      scheduler,
      startupSeconds: {
        controlPlane: controlPlaneSeconds,
        redis: redisSeconds,
        postgres: postgresSeconds,
        scheduler: schedulerSeconds,
      },
      logs: (lines?: number) => describeLogs(processes, lines),
      stop,
    };
  } catch (error) {
    await Promise.allSettled(parts);
    await stop();
    throw error;
  }
}

export function testbedInfo(testbed: Testbed): TestbedInfo {
  const { redis, postgres, controlPlane, scheduler } = testbed;
  return {
    dir: testbed.dir,
    kubeconfig: controlPlane.kubeconfig,
    server: controlPlane.server,
    nodeName: controlPlane.nodeName,
    redis: { host: redis.host, port: redis.port, address: redis.address, password: redis.password },
    postgres: {
      host: postgres.host,
      port: postgres.port,
      user: postgres.user,
      password: postgres.password,
      database: postgres.database,
      connectionString: postgres.connectionString,
    },
    scheduler: { address: scheduler.address },
  };
}
