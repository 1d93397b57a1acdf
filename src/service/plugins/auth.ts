/**
 * Bearer-token check for the write routes. The token is compared in constant
 * time and never logged (loggerOptions redacts the header besides).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { ServiceError } from '../errors.ts';
import type { StartupGate } from '../startup.ts';

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

/** Whether `presented` is `token`, in constant time. */
export function sameSecret(presented: string, token: string): boolean {
  // Equal-length digests: timingSafeEqual needs them, and the comparison leaks nothing about the length.
  return timingSafeEqual(digest(presented), digest(token));
}

/** Whether the request carries `Authorization: Bearer <token>`. */
export function presents(request: FastifyRequest, token: string): boolean {
  const header = request.headers.authorization ?? '';
  return sameSecret(header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '', token);
}

/** A preHandler that refuses the request with 401 unless it carries the API's token; a no-op when the API has none. */
export function requireToken(gate: StartupGate): (request: FastifyRequest) => Promise<void> {
  // eslint-disable-next-line @typescript-eslint/require-await -- Fastify runs async hooks without a done callback.
  return async (request) => {
    const token = gate.apiToken;
    if (token === undefined) return;
    if (!presents(request, token)) {
      throw new ServiceError('unauthorized', 'a valid Authorization: Bearer token is required');
    }
  };
}
