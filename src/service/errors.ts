/**
 * Typed, coded errors. The code is what logs and clients match on; the HTTP
 * status is decided here once, so every route answers a failure the same way.
 */
import type { Task } from './schemas/task.ts';

export const ERROR_STATUS = {
  validation_failed: 400,
  unauthorized: 401,
  task_not_found: 404,
  etag_mismatch: 409,
  /** A well-formed list cursor this listing cannot go on from (another ?status=, or its tasks moved since). */
  cursor_mismatch: 409,
  /** The operator sent a swap plan or job older than the one this pod runs. */
  stale_plan: 409,
  /** A control call without the operator's token. */
  forbidden: 403,
  /** The sidecar does not answer (not started yet, restarting). */
  sidecar_unavailable: 503,
  /** The sidecar answers but the state store behind it does not. */
  store_unavailable: 503,
  /** The sidecar answers but Dapr's scheduler (the Jobs API, for due dates) does not. */
  scheduler_unavailable: 503,
  /** A create or delete lost the race for its index bucket too many times in a row. */
  index_contention: 503,
  /** Startup has not finished: the sidecar, its components or the API token are not there yet. */
  not_ready: 503,
  /** The live setting read-only is on: writes are refused until it is off again. */
  read_only: 503,
  /** A write waited for a switch of task stores longer than its fence allows. */
  swap_fenced: 503,
  publish_failed: 502,
  invocation_failed: 502,
  /** Anything Dapr answered that none of the above explains: a bug or a misconfiguration. */
  dapr_failed: 500,
} as const;
export type ErrorCode = keyof typeof ERROR_STATUS;

export class ServiceError extends Error {
  readonly code: ErrorCode;
  /** The request field at fault (validation_failed). */
  readonly field: string | undefined;
  /** The stored task a conflicting write lost to (etag_mismatch). */
  readonly current: Task | undefined;

  constructor(code: ErrorCode, message: string, details: { field?: string; current?: Task; cause?: unknown } = {}) {
    super(message, { cause: details.cause });
    this.name = 'ServiceError';
    this.code = code;
    this.field = details.field;
    this.current = details.current;
  }

  get httpStatus(): number {
    return ERROR_STATUS[this.code];
  }

  /** 503s are worth retrying: the process recovers by itself once the sidecar or store is back. */
  get retryable(): boolean {
    return this.httpStatus === 503;
  }
}

export const isServiceError = (error: unknown, code?: ErrorCode): error is ServiceError =>
  error instanceof ServiceError && (code === undefined || error.code === code);
