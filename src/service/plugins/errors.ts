/**
 * One error handler for the whole API: validation failures name the field,
 * ServiceErrors answer their own status (503 with Retry-After), anything else
 * is a 500. Each failure is logged here, once.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { SWAP_ROUTE } from '../../api/contract.ts';
import { ServiceError, type ErrorCode } from '../errors.ts';
import { LOG } from '../logging.ts';
import type { ErrorBody } from '../schemas/task.ts';

/** Seconds a client should wait before retrying a 503: the sidecar or store is usually back within seconds. */
export const RETRY_AFTER_SECONDS = 1;

/** The operator's control routes (SWAP_ROUTE and below). */
const CONTROL_PREFIX = SWAP_ROUTE;

interface ValidationIssue {
  instancePath: string;
  message?: string;
  params?: { keys?: unknown };
}

/** The field a validation issue is about: its path, or the first unknown key for a strict object. */
export function fieldOf(issue: ValidationIssue, context: string | undefined): string {
  const path = issue.instancePath.replace(/^\//, '').replaceAll('/', '.');
  const keys = issue.params?.keys;
  const unknownKey = Array.isArray(keys) && typeof keys[0] === 'string' ? keys[0] : undefined;
  const field = [path, unknownKey].filter((part) => part !== undefined && part !== '').join('.');
  return field === '' ? (context ?? 'body') : field;
}

function validationBody(error: FastifyError): ErrorBody {
  const [issue] = (error.validation ?? []) as ValidationIssue[];
  const field = issue ? fieldOf(issue, error.validationContext) : (error.validationContext ?? 'body');
  return { code: 'validation_failed', message: `${field}: ${issue?.message ?? error.message}`, field };
}

/**
 * What an API client is told of a failure behind the service. daprd's own
 * words name the store's host, port, user and database ("failed to connect to
 * `user=postgres database=tasks`: 10.96.87.236:5432 (postgresql.…)"): they go
 * to the log, with the request's id; the client gets the step and the kind of
 * failure. The operator's control calls (token-protected) keep the detail, which
 * its conditions show.
 */
const FAILURE_KINDS: Partial<Record<ErrorCode, string>> = {
  store_unavailable: 'the state store failed or does not answer; retry shortly',
  dapr_failed: 'the Dapr sidecar answered an unexpected error',
  publish_failed: 'publishing the event failed',
  invocation_failed: 'calling the other app failed',
};

function clientMessage(error: ServiceError, url: string): string {
  const kind = FAILURE_KINDS[error.code];
  if (kind === undefined || error.cause === undefined || url.startsWith(CONTROL_PREFIX)) return error.message;
  const step = error.message.split(':')[0] ?? '';
  return `${step}: ${kind} (details in the service's log)`;
}

function errorHandler(fastify: FastifyInstance, _options: unknown, done: () => void): void {
  fastify.setErrorHandler((error: FastifyError, request, reply) => {
    if (hasZodFastifySchemaValidationErrors(error)) {
      return reply.code(400).send(validationBody(error));
    }
    if (error instanceof ServiceError) {
      const body: ErrorBody = { code: error.code, message: clientMessage(error, request.url) };
      if (error.field !== undefined) body.field = error.field;
      if (error.current !== undefined) body.current = error.current;
      if (error.retryable) {
        void reply.header('retry-after', String(RETRY_AFTER_SECONDS));
        request.log.warn({ code: error.code, err: error }, LOG.requestFailed);
      } else if (error.httpStatus >= 500) {
        request.log.error({ code: error.code, err: error }, LOG.requestFailed);
      }
      return reply.code(error.httpStatus).send(body);
    }
    // Fastify's own 4xx (malformed JSON, unsupported media type, body too large).
    if (error.statusCode !== undefined && error.statusCode < 500) {
      return reply
        .code(error.statusCode)
        .send({ code: 'validation_failed', message: `body: ${error.message}`, field: 'body' } satisfies ErrorBody);
    }
    request.log.error({ code: 'internal', err: error }, LOG.requestFailed);
    return reply.code(500).send({ code: 'internal', message: 'internal error' } satisfies ErrorBody);
  });
  done();
}

export default fp(errorHandler, { name: 'error-handler' });
