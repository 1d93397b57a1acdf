/** Probes: /healthz says the process serves HTTP; /readyz that the sidecar and every component it needs are there. */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { isServiceError } from '../errors.ts';
import type { Sidecar } from '../ports.ts';
import { missingComponents, type StartupGate } from '../startup.ts';

export interface HealthRoutesOptions {
  gate: StartupGate;
  sidecar: Sidecar;
  components: string[];
}

const probeSchema = z.object({ status: z.enum(['ok', 'not ready']), reason: z.string().optional() });

export default function healthRoutes(fastify: FastifyInstance, options: HealthRoutesOptions, done: () => void): void {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const probe = { schema: { hide: true, response: { 200: probeSchema, 503: probeSchema } } };

  app.get('/healthz', probe, () => ({ status: 'ok' as const }));

  app.get('/readyz', probe, async (_request, reply) => {
    if (!options.gate.isOpen) return reply.code(503).send({ status: 'not ready', reason: 'starting' });
    try {
      const missing = await missingComponents(options.sidecar, options.components);
      if (missing.length === 0) return { status: 'ok' as const };
      return await reply
        .code(503)
        .send({ status: 'not ready', reason: `components not loaded: ${missing.join(', ')}` });
    } catch (error) {
      if (!isServiceError(error)) throw error;
      return reply.code(503).send({ status: 'not ready', reason: error.code });
    }
  });
  done();
}
