/**
 * Dapr's scheduler (the Jobs API's service) in standalone mode, built from the
 * same dapr module as daprd: its embedded etcd keeps the jobs in a data folder
 * on disk, so a scheduler killed and started again still holds every job.
 * daprd reaches it with `--scheduler-host-address` (daprd.ts). Plain gRPC on
 * loopback: no Sentry, as daprd runs here without mTLS.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './ports.ts';
import { goBinary } from './prerequisites.ts';
import { ManagedProcess, waitUntil } from './process.ts';

export interface SchedulerServer {
  /** `127.0.0.1:<port>`, daprd's `--scheduler-host-address`. */
  address: string;
  process: ManagedProcess;
  /** A crash and a restart on the same ports and data: SIGKILL, start again, wait until it serves. */
  crashAndRestart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startScheduler(dir: string): Promise<SchedulerServer> {
  mkdirSync(dir, { recursive: true });
  const [port, healthzPort, metricsPort, etcdClientPort, etcdPeerPort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const id = 'dapr-scheduler-server-0';
  const address = `127.0.0.1:${port}`;
  const child = ManagedProcess.start({
    name: 'dapr-scheduler',
    command: goBinary('dapr-controlplane', 'scheduler'),
    args: [
      '--mode',
      'standalone',
      '--id',
      id,
      '--listen-address',
      '127.0.0.1',
      '--port',
      String(port),
      '--override-broadcast-host-port',
      address,
      '--healthz-listen-address',
      '127.0.0.1',
      '--healthz-port',
      String(healthzPort),
      '--metrics-listen-address',
      '127.0.0.1',
      '--metrics-port',
      String(metricsPort),
      '--etcd-data-dir',
      join(dir, 'etcd'),
      '--etcd-client-listen-address',
      '127.0.0.1',
      '--etcd-client-port',
      String(etcdClientPort),
      '--etcd-initial-cluster',
      `${id}=http://127.0.0.1:${etcdPeerPort}`,
      '--log-level',
      'info',
    ],
    logDir: dir,
  });
  const serving = () =>
    waitUntil(
      async () => (await fetch(`http://127.0.0.1:${healthzPort}/healthz`).catch(() => undefined))?.ok === true,
      { what: "Dapr's scheduler to serve", timeoutMs: 60_000, watch: [child] },
    );
  await serving();
  return {
    address,
    process: child,
    async crashAndRestart() {
      await child.restart('SIGKILL');
      await serving();
    },
    stop: () => child.stop(),
  };
}
