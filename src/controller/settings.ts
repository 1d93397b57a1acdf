/** Operator settings from the environment, validated: a bad value stops start-up with the variable named. */
import { hostname } from 'node:os';
import type { LeaderElectionOptions } from '../kube/leader.ts';

/*
 * Read by hand rather than with zod: the operator process does not load zod
 * (about 11 MiB of resident memory) for a dozen variables.
 */

/** Reads environment variables, collecting every problem so one start-up names them all. */
class EnvironmentReader {
  private readonly env: NodeJS.ProcessEnv;
  readonly problems: string[] = [];
  constructor(env: NodeJS.ProcessEnv) {
    this.env = env;
  }

  private raw(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value === '' ? undefined : value;
  }

  number(name: string, fallback: number, check: { min: number; max: number; integer?: boolean }): number {
    const text = this.raw(name);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (
      !Number.isFinite(value) ||
      value < check.min ||
      value > check.max ||
      (check.integer && !Number.isInteger(value))
    ) {
      this.problems.push(
        `${name}: expected ${check.integer ? 'an integer' : 'a number'} from ${check.min} to ${check.max}, got "${text}"`,
      );
      return fallback;
    }
    return value;
  }

  seconds(name: string, fallback: number): number {
    return this.number(name, fallback, { min: 0.001, max: 86_400 });
  }

  port(name: string, fallback: number): number {
    return this.number(name, fallback, { min: 0, max: 65_535, integer: true });
  }

  choice<const T extends string>(name: string, choices: readonly T[], fallback: T): T {
    const text = this.raw(name);
    if (text === undefined) return fallback;
    if (!(choices as readonly string[]).includes(text)) {
      this.problems.push(`${name}: expected one of ${choices.join(', ')}, got "${text}"`);
      return fallback;
    }
    return text as T;
  }

  text(name: string): string | undefined;
  text(name: string, fallback: string): string;
  text(name: string, fallback?: string): string | undefined {
    return this.raw(name) ?? fallback;
  }
}

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
  const read = new EnvironmentReader(env);
  const settings: OperatorSettings = {
    concurrency: read.number('OPERATOR_CONCURRENCY', 8, { min: 1, max: 256, integer: true }),
    resyncPeriodMs: read.seconds('OPERATOR_RESYNC_SECONDS', 600) * 1000,
    leaderElection:
      read.choice('LEADER_ELECT', ['true', 'false'], 'true') === 'true'
        ? {
            namespace: read.text('LEADER_ELECTION_NAMESPACE') ?? read.text('POD_NAMESPACE') ?? 'taskapi-system',
            leaseName: read.text('LEADER_ELECTION_ID', 'taskapi-operator'),
            identity: read.text('POD_NAME') ?? `${hostname()}-${process.pid}`,
            leaseDurationMs: read.seconds('LEASE_DURATION_SECONDS', 15) * 1000,
            renewDeadlineMs: read.seconds('RENEW_DEADLINE_SECONDS', 10) * 1000,
            retryPeriodMs: read.seconds('RETRY_PERIOD_SECONDS', 2) * 1000,
          }
        : undefined,
    metricsPort: read.port('METRICS_PORT', 8080),
    healthPort: read.port('HEALTH_PORT', 8081),
    bindAddress: read.text('BIND_ADDRESS', '0.0.0.0'),
    logLevel: read.choice('LOG_LEVEL', ['trace', 'debug', 'info', 'warn', 'error'], 'info'),
    shutdownGraceMs: read.seconds('SHUTDOWN_GRACE_SECONDS', 25) * 1000,
  };
  if (read.problems.length > 0) throw new Error(`invalid operator settings: ${read.problems.join('; ')}`);
  return settings;
}
