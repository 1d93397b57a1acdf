/**
 * DueReminders on Dapr's Jobs API. The SDK's high-level client has no Jobs API
 * yet, so this goes through the gRPC client @dapr/dapr ships (ConnectRPC, the
 * Dapr service's generated stubs, its API-token interceptor): one job per task
 * with a due date, named after the task, due once at its due date. Dapr's
 * scheduler keeps the job, so it fires after this process or the scheduler
 * restarts; daprd then POSTs /job/<name> to the app (routes/jobs.ts).
 */
import type { DaprClient } from '@dapr/dapr';
import type * as GrpcClientModule from '@dapr/dapr/implementation/Client/GRPCClient/GRPCClient.js';
import { ServiceError } from '../errors.ts';
import type { DueReminders } from '../ports.ts';

/** The job of task `id`'s due date. */
export const dueJobName = (id: string): string => `${DUE_JOB_PREFIX}${id}`;
export const DUE_JOB_PREFIX = 'task-due-';

/** gRPC status codes (ConnectRPC's Code) this adapter tells apart. */
const NOT_FOUND = 5;

/** The SDK's gRPC client class (internal to it; its typings say what getClient gives). */
type GRPCClient = GrpcClientModule.default;
type JobsClient = Awaited<ReturnType<GRPCClient['getClient']>>;

/** `sdk`: a DaprClient over gRPC (createDaprGrpcClient). */
export function daprDueReminders(sdk: DaprClient): DueReminders {
  // Started on first use, not at start-up: the routes that need it answer 503 until the sidecar serves.
  let client: Promise<JobsClient> | undefined;
  const jobs = (): Promise<JobsClient> => {
    const started =
      client ??
      (sdk.daprClient as GRPCClient).getClient().catch((error: unknown) => {
        client = undefined;
        throw error;
      });
    client = started;
    return started;
  };
  const call = async <T>(operation: string, run: (jobs: JobsClient) => Promise<T>): Promise<T> => {
    try {
      return await run(await jobs());
    } catch (error) {
      throw new ServiceError(
        'scheduler_unavailable',
        `${operation}: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
  };
  return {
    async schedule(id, dueAt) {
      await call('schedule the due-date job', (api) =>
        api.scheduleJobAlpha1({ job: { name: dueJobName(id), dueTime: dueAt, repeats: 1 }, overwrite: true }),
      );
    },
    async cancel(id) {
      try {
        await call('delete the due-date job', (api) => api.deleteJobAlpha1({ name: dueJobName(id) }));
      } catch (error) {
        if (codeOf(error) !== NOT_FOUND) throw error;
      }
    },
  };
}

const codeOf = (error: unknown): unknown => {
  const cause = error instanceof Error ? error.cause : undefined;
  return typeof cause === 'object' && cause !== null && 'code' in cause ? cause.code : undefined;
};
