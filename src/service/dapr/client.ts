/**
 * The one place @dapr/dapr's results become typed errors. The SDK reports
 * failures three ways: some calls return `{ error }`, others throw an Error
 * whose message is JSON `{ status, error_msg }` with daprd's own JSON inside,
 * and a sidecar that does not answer surfaces as a node-fetch system error.
 */
import { CommunicationProtocolEnum, DaprClient, LogLevel, type LoggerService } from '@dapr/dapr';
import type { FastifyBaseLogger } from 'fastify';
import type { SidecarAddress } from '../config.ts';
import { ServiceError, type ErrorCode } from '../errors.ts';

/**
 * The SDK's logs routed into ours at debug level (we log each failure where
 * handled). Its verbose and debug levels print request headers, Dapr's API
 * token among them: a client given this runs at LogLevel.Info, never below.
 */
export function sdkLogService(logger: FastifyBaseLogger): LoggerService {
  const sdkLogger = logger.child({ component: 'dapr-sdk' });
  const forward = (message: unknown): void => {
    sdkLogger.debug(String(message));
  };
  return { error: forward, warn: forward, info: forward, verbose: forward, debug: forward };
}

/**
 * A client over daprd's gRPC API, for what the SDK serves there only: the Jobs
 * API's stubs (dapr/jobs.ts) and configuration subscriptions (settings.ts).
 */
export function createDaprGrpcClient(sidecar: SidecarAddress, logger: FastifyBaseLogger): DaprClient {
  return new DaprClient({
    daprHost: sidecar.host,
    daprPort: String(sidecar.grpcPort),
    communicationProtocol: CommunicationProtocolEnum.GRPC,
    logger: { level: LogLevel.Info, service: sdkLogService(logger) },
  });
}

/** One long-lived client per process, over daprd's HTTP API. */
export function createDaprClient(sidecar: SidecarAddress, logger: FastifyBaseLogger): DaprClient {
  return new DaprClient({
    daprHost: sidecar.host,
    daprPort: String(sidecar.httpPort),
    communicationProtocol: CommunicationProtocolEnum.HTTP,
    isKeepAlive: true,
    logger: { level: LogLevel.Info, service: sdkLogService(logger) },
  });
}

interface DaprHttpFailure {
  status: number;
  errorCode: string | undefined;
  message: string;
}

/** daprd's answer inside an SDK error, when there is one. */
function httpFailure(error: unknown): DaprHttpFailure | undefined {
  if (!(error instanceof Error)) return undefined;
  try {
    const outer = JSON.parse(error.message) as { status?: unknown; error_msg?: unknown };
    if (typeof outer.status !== 'number') return undefined;
    const text = typeof outer.error_msg === 'string' ? outer.error_msg : '';
    let inner: { errorCode?: unknown; message?: unknown } = {};
    try {
      inner = JSON.parse(text) as typeof inner;
    } catch {
      // Not daprd's JSON (an app's answer to an invocation): keep the text.
    }
    return {
      status: outer.status,
      errorCode: typeof inner.errorCode === 'string' ? inner.errorCode : undefined,
      message: typeof inner.message === 'string' ? inner.message : text,
    };
  } catch {
    return undefined;
  }
}

const SOCKET_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND']);

function isSidecarUnreachable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = 'code' in error ? error.code : undefined;
  const type = 'type' in error ? error.type : undefined;
  return (
    (typeof code === 'string' && SOCKET_ERRORS.has(code)) ||
    type === 'system' ||
    error.message === 'DAPR_SIDECAR_COULD_NOT_BE_STARTED'
  );
}

/** The daprd error codes that mean "the store (or broker) behind the sidecar failed", not "you asked wrongly". */
const COMPONENT_FAILURES = new Set([
  'ERR_STATE_GET',
  'ERR_STATE_SAVE',
  'ERR_STATE_DELETE',
  'ERR_STATE_TRANSACTION',
  'ERR_STATE_BULK_GET',
]);

/** Translates any SDK failure into a ServiceError; `fallback` names what failed when daprd said nothing more specific. */
export function daprError(error: unknown, operation: string, fallback: ErrorCode = 'dapr_failed'): ServiceError {
  if (error instanceof ServiceError) return error;
  if (isSidecarUnreachable(error)) {
    return new ServiceError('sidecar_unavailable', `${operation}: the Dapr sidecar does not answer`, { cause: error });
  }
  const failure = httpFailure(error);
  if (failure === undefined) return new ServiceError(fallback, `${operation}: ${String(error)}`, { cause: error });
  const detail = `${operation}: daprd answered ${failure.status} ${failure.errorCode ?? ''} ${failure.message}`.trim();
  if (failure.status === 409) return new ServiceError('etag_mismatch', detail, { cause: error });
  if (failure.errorCode !== undefined && COMPONENT_FAILURES.has(failure.errorCode)) {
    return new ServiceError('store_unavailable', detail, { cause: error });
  }
  return new ServiceError(fallback, detail, { cause: error });
}

/** Runs an SDK call that throws, or returns `{ error }`, and throws a ServiceError either way. */
export async function callDapr<T>(operation: string, call: () => Promise<T>, fallback?: ErrorCode): Promise<T> {
  let result: T;
  try {
    result = await call();
  } catch (error) {
    throw daprError(error, operation, fallback);
  }
  if (typeof result === 'object' && result !== null && 'error' in result && result.error !== undefined) {
    throw daprError(result.error, operation, fallback);
  }
  return result;
}
