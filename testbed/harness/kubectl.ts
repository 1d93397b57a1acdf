import { execFile } from 'node:child_process';
import { helmBinary, kubectlBinary } from './prerequisites.ts';

export interface CommandResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/**
 * Runs a Kubernetes client (kubectl, helm) against a kubeconfig, as a user
 * would. Resolves with the exit code instead of throwing, so tests can assert
 * on refusals; use the `…Ok` forms when failure is not expected.
 */
function runClient(
  binary: string,
  kubeconfig: string,
  args: string[],
  input?: string,
  env: NodeJS.ProcessEnv = {},
): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(
      binary,
      ['--kubeconfig', kubeconfig, ...args],
      { maxBuffer: 64 * 1024 * 1024, env: { ...process.env, KUBECONFIG: kubeconfig, ...env } },
      (error, stdout, stderr) => {
        const exitCode = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ stdout, stderr, exitCode });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

function stdoutOf(program: string, args: string[], result: CommandResult): string {
  if (result.exitCode !== 0) {
    throw new Error(`${program} ${args.join(' ')} failed (exit ${result.exitCode}): ${result.stderr.trim()}`);
  }
  return result.stdout;
}

export const kubectl = (kubeconfig: string, args: string[], input?: string): Promise<CommandResult> =>
  runClient(kubectlBinary(), kubeconfig, args, input);

export async function kubectlOk(kubeconfig: string, args: string[], input?: string): Promise<string> {
  return stdoutOf('kubectl', args, await kubectl(kubeconfig, args, input));
}

/**
 * Runs helm with its cache, config and data under `home`, so a user's own
 * repositories and plugins never change what the test sees.
 */
export const helm = (kubeconfig: string, home: string, args: string[]): Promise<CommandResult> =>
  runClient(helmBinary(), kubeconfig, args, undefined, {
    HELM_CACHE_HOME: `${home}/cache`,
    HELM_CONFIG_HOME: `${home}/config`,
    HELM_DATA_HOME: `${home}/data`,
  });

export async function helmOk(kubeconfig: string, home: string, args: string[]): Promise<string> {
  return stdoutOf('helm', args, await helm(kubeconfig, home, args));
}
