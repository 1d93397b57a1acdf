/**
 * A real daprd in self-hosted (standalone) mode against a resources folder.
 */
import { mkdirSync } from 'node:fs';
import { freePort } from './ports.ts';
import { goBinary } from './prerequisites.ts';
import { ManagedProcess, waitUntil } from './process.ts';

export interface DaprdOptions {
  appId: string;
  /** Folder of Component / Subscription / Configuration manifests daprd loads. */
  resourcesPath: string;
  /** Folder the log file goes to. */
  logDir: string;
  /** Port of the app daprd delivers subscriptions and invocations to. */
  appPort?: number;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  enableApiLogging?: boolean;
  /** Extra environment, e.g. KUBECONFIG for components that talk to the API server. */
  env?: NodeJS.ProcessEnv;
  /** Dapr's scheduler (scheduler.ts), for the Jobs API; without one, jobs calls fail. */
  schedulerAddress?: string;
}

export interface Daprd {
  appId: string;
  httpPort: number;
  grpcPort: number;
  /** http://127.0.0.1:<httpPort> */
  httpUrl: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

export async function startDaprd(options: DaprdOptions): Promise<Daprd> {
  mkdirSync(options.logDir, { recursive: true });
  const httpPort = await freePort();
  const grpcPort = await freePort();
  const args = [
    '--mode',
    'standalone',
    '--app-id',
    options.appId,
    '--resources-path',
    options.resourcesPath,
    '--dapr-listen-addresses',
    '127.0.0.1',
    '--dapr-http-port',
    String(httpPort),
    '--dapr-grpc-port',
    String(grpcPort),
    '--dapr-internal-grpc-port',
    String(await freePort()),
    '--dapr-internal-grpc-listen-address',
    '127.0.0.1',
    '--metrics-port',
    String(await freePort()),
    '--log-level',
    options.logLevel ?? 'info',
    '--enable-api-logging',
    String(options.enableApiLogging ?? false),
    // No placement service runs here: actors are unused. The scheduler (jobs) is the caller's, if any.
    '--placement-host-address',
    '',
    '--dapr-graceful-shutdown-seconds',
    '2',
  ];
  if (options.schedulerAddress !== undefined) args.push('--scheduler-host-address', options.schedulerAddress);
  if (options.appPort !== undefined)
    args.push('--app-port', String(options.appPort), '--app-channel-address', '127.0.0.1');
  const child = ManagedProcess.start({
    name: `daprd-${options.appId}`,
    command: goBinary('daprd', 'daprd'),
    args,
    logDir: options.logDir,
    env: { ...process.env, ...options.env },
  });
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  // "outbound" health: components loaded and the API served, without waiting for the app.
  await waitUntil(async () => (await fetch(`${httpUrl}/v1.0/healthz/outbound`)).status === 204, {
    what: `daprd ${options.appId} to load its components`,
    timeoutMs: 60_000,
    watch: [child],
  });
  return { appId: options.appId, httpPort, grpcPort, httpUrl, process: child, stop: () => child.stop() };
}
