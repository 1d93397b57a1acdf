/**
 * Only this pod's Dapr sidecar may call the routes Dapr calls (the
 * Subscription's route, the notification method): daprd sends Dapr's app token
 * (`dapr.io/app-token-secret`, APP_API_TOKEN) in the `dapr-api-token` header
 * on every call to the app, and anything else that reaches the pod does not
 * have it. Compared in constant time, never logged.
 */
import type { FastifyRequest } from 'fastify';
import { ServiceError } from '../errors.ts';
import { sameSecret } from './auth.ts';

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
