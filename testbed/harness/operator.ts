/**
 * Runs the operator as its own process against the test bed, as it runs in a
 * cluster: the compiled JavaScript, with the Node arguments of the container in
 * config/manager/manager.yaml (so tests and benchmarks measure what ships).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { operatorArgs } from '../../src/generated-files.ts';
import { freePort } from './ports.ts';
import { ManagedProcess, waitUntil } from './process.ts';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface RunningOperator {
  name: string;
  process: ManagedProcess;
  metricsUrl: string;
  healthUrl: string;
  /** Sum of a counter (all label sets) from /metrics. */
  counter(name: string): Promise<number>;
  stop(): Promise<void>;
}

export interface OperatorOptions {
  kubeconfig: string;
  logDir: string;
  /** Distinguishes several operators (leader election); also their Lease identity. */
  name?: string;
  env?: Record<string, string>;
  /** Node flags added to the manifest's (benchmarks trying one out before it ships). */
  extraNodeArgs?: string[];
}

/** Compiles src/ (operator and services) to dist/, as the image does (incremental: about a second when little changed). */
export function compileSources(): void {
  execFileSync(
    process.execPath,
    [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'],
    {
      cwd: repoRoot,
      stdio: 'inherit',
    },
  );
}

/** The operator container's arguments to `node`, from the manifest users install; the operator must be compiled. */
export function operatorNodeArgs(): string[] {
  const args = operatorArgs();
  const entry = args.at(-1) ?? '';
  if (!existsSync(join(repoRoot, entry))) {
    throw new Error(
      `${entry} does not exist: the operator is not compiled (compileSources(), or npx tsc -p tsconfig.build.json)`,
    );
  }
  return args;
}

/** `args` with `extra` flags placed before the script, the last argument. */
const withNodeArgs = (args: string[], extra: string[]): string[] => [...args.slice(0, -1), ...extra, ...args.slice(-1)];

export async function startOperator(options: OperatorOptions): Promise<RunningOperator> {
  const name = options.name ?? 'taskapi-operator';
  const metricsPort = await freePort();
  const healthPort = await freePort();
  const child = ManagedProcess.start({
    name,
    // process.execPath: the Node running the tests (24, from the node devDependency).
    command: process.execPath,
    args: withNodeArgs(operatorNodeArgs(), options.extraNodeArgs ?? []),
    cwd: repoRoot,
    logDir: options.logDir,
    env: {
      ...process.env,
      KUBECONFIG: options.kubeconfig,
      POD_NAME: name,
      METRICS_PORT: String(metricsPort),
      HEALTH_PORT: String(healthPort),
      BIND_ADDRESS: '127.0.0.1',
      LEADER_ELECT: 'false',
      ...options.env,
    },
  });
  const healthUrl = `http://127.0.0.1:${healthPort}`;
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  await waitUntil(async () => (await fetch(`${healthUrl}/healthz`)).ok, {
    what: `operator ${name} to serve /healthz`,
    timeoutMs: 30_000,
    watch: [child],
  });
  return {
    name,
    process: child,
    metricsUrl,
    healthUrl,
    async counter(metric: string): Promise<number> {
      const text = await (await fetch(metricsUrl)).text();
      return text
        .split('\n')
        .filter((line) => line.startsWith(`${metric}{`) || line.startsWith(`${metric} `))
        .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
    },
    stop: () => child.stop(),
  };
}
