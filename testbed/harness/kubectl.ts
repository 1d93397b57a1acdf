import { execFile } from 'node:child_process';
import { kubectlBinary } from './prerequisites.ts';

export interface KubectlResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/**
 * Runs kubectl against a kubeconfig, as a user would. Resolves with the exit
 * code instead of throwing, so tests can assert on refusals; use `kubectlOk`
 * when failure is not expected.
 */
export function kubectl(kubeconfig: string, args: string[], input?: string): Promise<KubectlResult> {
  return new Promise((resolve) => {
    const child = execFile(
      kubectlBinary(),
      ['--kubeconfig', kubeconfig, ...args],
      { maxBuffer: 64 * 1024 * 1024, env: { ...process.env, KUBECONFIG: kubeconfig } },
      (error, stdout, stderr) => {
        const exitCode = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ stdout, stderr, exitCode });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

export async function kubectlOk(kubeconfig: string, args: string[], input?: string): Promise<string> {
  const result = await kubectl(kubeconfig, args, input);
  if (result.exitCode !== 0) {
    throw new Error(`kubectl ${args.join(' ')} failed (exit ${result.exitCode}): ${result.stderr.trim()}`);
  }
  return result.stdout;
}
