/** Operator settings from the environment, validated: a bad value stops start-up with the variable named. */
import { hostname } from 'node:os';
import { z } from 'zod';
import type { LeaderElectionOptions } from './leader.ts';

const seconds = (fallback: number) => z.coerce.number().positive().default(fallback);
const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);

const environmentSchema = z.object({
  OPERATOR_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(8),
  OPERATOR_RESYNC_SECONDS: seconds(600),
  LEADER_ELECT: z.enum(['true', 'false']).default('true'),
  LEADER_ELECTION_NAMESPACE: z.string().min(1).optional(),
  LEADER_ELECTION_ID: z.string().min(1).default('taskapi-operator'),
  LEASE_DURATION_SECONDS: seconds(15),
  RENEW_DEADLINE_SECONDS: seconds(10),
  RETRY_PERIOD_SECONDS: seconds(2),
  POD_NAME: z.string().min(1).optional(),
  POD_NAMESPACE: z.string().min(1).optional(),
  METRICS_PORT: port(8080),
  HEALTH_PORT: port(8081),
  BIND_ADDRESS: z.string().default('0.0.0.0'),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info'),
  SHUTDOWN_GRACE_SECONDS: seconds(25),
});

export interface OperatorSettings {
  concurrency: number;
  resyncPeriodMs: number;
  leaderElection: LeaderElectionOptions | undefined;
  metricsPort: number;
  healthPort: number;
  bindAddress: string;
  logLevel: string;
  shutdownGraceMs: number;
}

export function settingsFromEnv(env: NodeJS.ProcessEnv): OperatorSettings {
  const parsed = environmentSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ');
    throw new Error(`invalid operator settings: ${problems}`);
  }
  const e = parsed.data;
  return {
    concurrency: e.OPERATOR_CONCURRENCY,
    resyncPeriodMs: e.OPERATOR_RESYNC_SECONDS * 1000,
    leaderElection:
      e.LEADER_ELECT === 'true'
        ? {
            namespace: e.LEADER_ELECTION_NAMESPACE ?? e.POD_NAMESPACE ?? 'taskapi-system',
            leaseName: e.LEADER_ELECTION_ID,
            identity: e.POD_NAME ?? `${hostname()}-${process.pid}`,
            leaseDurationMs: e.LEASE_DURATION_SECONDS * 1000,
            renewDeadlineMs: e.RENEW_DEADLINE_SECONDS * 1000,
            retryPeriodMs: e.RETRY_PERIOD_SECONDS * 1000,
          }
        : undefined,
    metricsPort: e.METRICS_PORT,
    healthPort: e.HEALTH_PORT,
    bindAddress: e.BIND_ADDRESS,
    logLevel: e.LOG_LEVEL,
    shutdownGraceMs: e.SHUTDOWN_GRACE_SECONDS * 1000,
  };
}
