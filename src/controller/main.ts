/**
 * The operator process: settings, logger, metrics and health endpoints, leader
 * election, the controller, and a graceful shutdown on SIGTERM/SIGINT
 * (in-flight reconciles finish, the Lease is handed back).
 */
import type { Server } from 'node:http';
import { pino } from 'pino';
import { Controller } from './controller.ts';
import { loadConnection, type Connection } from '../kube/kubeconfig.ts';
import { LeaderElector } from '../kube/leader.ts';
import { OperatorMetrics } from './metrics.ts';
import { DEFAULT_BUILD_SETTINGS } from './resources/deployment.ts';
import { settingsFromEnv, type OperatorSettings } from './settings.ts';
import { operatorClient } from './taskapi-client.ts';
import { http } from '../kube/node-http.ts';

const base = { component: 'taskapi-operator' };

/** Settings and the API server's address: what a bad environment or kubeconfig stops, as one JSON line and exit 1. */
async function startUp(): Promise<{ settings: OperatorSettings; connection: Connection }> {
  try {
    const settings = settingsFromEnv(process.env);
    return { settings, connection: await loadConnection() };
  } catch (error) {
    pino({ base }).fatal(
      { err: error, reason: error instanceof Error ? error.message : String(error) },
      'operator failed to start',
    );
    process.exit(1);
  }
}

const { settings, connection } = await startUp();
const logger = pino({ level: settings.logLevel, base });
logger.info({ server: connection.server, source: connection.source }, 'API server');

const metrics = new OperatorMetrics();
const kube = operatorClient(connection);
kube.onWrite.push((verb, kind) => {
  metrics.writes.inc({ verb, kind });
});
const controller = new Controller(
  kube,
  DEFAULT_BUILD_SETTINGS,
  { concurrency: settings.concurrency, resyncPeriodMs: settings.resyncPeriodMs },
  metrics,
  logger,
);
const leaderElection = settings.leaderElection;
const elector = leaderElection && new LeaderElector(kube, leaderElection, logger);
let shuttingDown = false;
let controllerStarted: Promise<void> | undefined;

function listen(port: number, handle: (path: string) => { status: number; body: string | Promise<string> }): Server {
  const server = http.createServer((request, response) => {
    const { status, body } = handle(request.url ?? '/');
    void Promise.resolve(body).then((text) => {
      response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(text);
    });
  });
  server.listen(port, settings.bindAddress);
  return server;
}

const healthServer = listen(settings.healthPort, (path) => {
  if (path === '/healthz') return { status: shuttingDown ? 503 : 200, body: shuttingDown ? 'shutting down' : 'ok' };
  if (path === '/readyz') {
    const leading = !elector || elector.isLeader;
    const ready = !shuttingDown && (!leading || controller.hasSynced);
    return { status: ready ? 200 : 503, body: ready ? 'ok' : 'not ready' };
  }
  return { status: 404, body: 'not found' };
});
const metricsServer = listen(settings.metricsPort, (path) =>
  path === '/metrics' ? { status: 200, body: metrics.registry.render() } : { status: 404, body: 'not found' },
);

function startController(): void {
  metrics.leader.set({ name: leaderElection?.leaseName ?? 'none' }, 1);
  controllerStarted = controller.start().catch((error: unknown) => {
    logger.fatal({ err: error }, 'controller failed to start');
    process.exit(1);
  });
}

async function shutdown(signal: string): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  logger.info({ signal }, 'shutting down: finishing in-flight reconciles');
  const forceExit = setTimeout(() => {
    logger.error('shutdown took too long; exiting');
    process.exit(1);
  }, settings.shutdownGraceMs);
  forceExit.unref();
  await controllerStarted;
  await controller.stop();
  await elector?.stop();
  healthServer.close();
  metricsServer.close();
  kube.close();
  logger.info('stopped');
  process.exit(0);
}

process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));

if (elector) {
  metrics.leader.set({ name: leaderElection.leaseName }, 0);
  void elector.run(startController, () => {
    // Another replica may already be reconciling: stop at once, as controller-runtime does.
    process.exit(1);
  });
} else {
  startController();
}
logger.info({ healthPort: settings.healthPort, metricsPort: settings.metricsPort }, 'operator started');
