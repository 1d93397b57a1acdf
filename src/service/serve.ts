/** Listening and graceful shutdown, shared by both entry points. */
import type { FastifyInstance } from 'fastify';
import type { FastifyBaseLogger } from 'fastify';
import type { ListenSettings } from './config.ts';
import { LOG } from './logging.ts';

/**
 * Fastify answers 503 to requests arriving on open keep-alive connections once
 * it closes. By then the pod has left the Service (the preStop pause) and its
 * sidecar is still up, so such a request is served like any other.
 */
export const SERVE_WHILE_CLOSING = { return503OnClosing: false } as const;

/** How long a stopping server answers with `connection: close` before it closes idle connections. */
const CONNECTION_CLOSE_MS = 1_000;

/** Seconds in-flight requests get to finish after SIGTERM; Kubernetes' default grace period is 30. */
const SHUTDOWN_GRACE_MS = 20_000;

export async function serve(
  fastify: FastifyInstance,
  settings: ListenSettings,
  logger: FastifyBaseLogger,
  onClose: () => Promise<void> = () => Promise.resolve(),
): Promise<void> {
  let stopping = false;
  // Once stopping, every answer tells its client to close the connection, so clients with a kept-alive
  // connection move to another pod before this one closes the connections left idle.
  // On the server itself: the routes live in plugins registered before, which hooks added now would miss.
  fastify.server.on('request', (_request, response) => {
    if (stopping) response.setHeader('connection', 'close');
  });
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, LOG.stopping);
    setTimeout(() => process.exit(1), SHUTDOWN_GRACE_MS).unref();
    await new Promise((resolve) => setTimeout(resolve, CONNECTION_CLOSE_MS));
    await fastify.close();
    await onClose();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  await fastify.listen({ port: settings.port, host: settings.host });
  logger.info({ port: settings.port, host: settings.host }, LOG.listening);
}
