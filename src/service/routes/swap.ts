/**
 * The operator's control of a swap (src/api/contract.ts: SWAP_ROUTE): read a
 * pod's plan and progress, set its plan, start a copier job. Only with the
 * operator's token; not part of the task API's document.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { SWAP_JOB_ROUTE, SWAP_PROBE_ROUTE, SWAP_ROUTE, type SwapReport } from '../../api/contract.ts';
import { ServiceError } from '../errors.ts';
import { presents } from '../plugins/auth.ts';
import type { Sidecar } from '../ports.ts';
import { swapJobSchema, swapPlanSchema, swapProbeSchema } from '../schemas/swap.ts';
import type { SwapStore } from '../swap.ts';

export interface SwapRoutesOptions {
  swap: SwapStore;
  sidecar: Sidecar;
  /** Without one, every call is refused: nobody can drive this pod. */
  controlToken: string | undefined;
}

export default function swapRoutes(fastify: FastifyInstance, options: SwapRoutesOptions, done: () => void): void {
  const { swap, sidecar, controlToken } = options;
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  // eslint-disable-next-line @typescript-eslint/require-await -- Fastify runs async hooks without a done callback.
  const authorize = async (request: Parameters<typeof presents>[0]): Promise<void> => {
    if (controlToken === undefined || !presents(request, controlToken)) {
      throw new ServiceError('forbidden', 'swap control needs the operator token');
    }
  };
  const report = async (): Promise<SwapReport> => {
    let loaded: string[] = [];
    try {
      loaded = await sidecar.loadedComponents();
    } catch {
      // The sidecar does not answer: nothing loaded, as far as this pod can tell.
    }
    return swap.report(loaded);
  };

  app.get(SWAP_ROUTE, { preHandler: authorize, schema: { hide: true } }, report);

  app.put(
    SWAP_ROUTE,
    { preHandler: authorize, schema: { hide: true, body: swapPlanSchema } },
    async (request, reply) => {
      const outcome = await swap.apply(request.body, true);
      return reply.code(outcome === 'stale' ? 409 : 200).send(await report());
    },
  );

  app.post(
    SWAP_PROBE_ROUTE,
    { preHandler: authorize, schema: { hide: true, body: swapProbeSchema } },
    async (request) => {
      await swap.probe(request.body.component);
      return { component: request.body.component, answers: true };
    },
  );

  app.post(SWAP_JOB_ROUTE, { preHandler: authorize, schema: { hide: true, body: swapJobSchema } }, (request, reply) =>
    reply.code(202).send(swap.startJob(request.body.kind, request.body.revision, request.body.id)),
  );
  done();
}
