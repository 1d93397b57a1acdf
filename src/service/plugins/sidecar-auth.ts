/**
 * Only this pod's Dapr sidecar may call the routes Dapr calls (the
 * Subscription's route, the notification method): daprd sends Dapr's app token
 * (`dapr.io/app-token-secret`, APP_API_TOKEN) in the `dapr-api-token` header
 * on every call to the app, and anything else that reaches the pod does not
 * have it. Compared in constant time, never logged.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ServiceError } from '../errors.ts';
import { sameSecret } from './auth.ts';

/**
 * For routes daprd posts to whose body is not read (a job's data, a cron
 * binding's event): Fastify refuses an empty JSON body, which is what daprd
 * sends for them. Applies to the routes of the plugin it is called in.
 */
export function ignoreJsonBody(fastify: FastifyInstance): void {
  fastify.removeContentTypeParser('application/json');
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, _body, parsed) => {
    parsed(null, undefined);
  });
}

/** The header daprd sends the app token in. */
export const APP_TOKEN_HEADER = 'dapr-api-token';

/** A preHandler refusing with 401 a call without the app token; a no-op when none is configured. */
export function requireSidecar(appToken: string | undefined): (request: FastifyRequest) => Promise<void> {
  // eslint-disable-next-line @typescript-eslint/require-await -- Fastify runs async hooks without a done callback.
  return async (request) => {
    if (appToken === undefined) return;
    const presented = request.headers[APP_TOKEN_HEADER];
    if (typeof presented !== 'string' || !sameSecret(presented, appToken)) {
      throw new ServiceError(
        'unauthorized',
        `only this pod's Dapr sidecar may call ${request.routeOptions.url ?? 'this route'}`,
      );
    }
  };
}
