import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { stringify } from 'yaml';
import { helmBinary, kubectlBinary } from './prerequisites.ts';
import { waitUntil } from './process.ts';

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

/** `kubectl apply -f -` of `manifests`, as one YAML stream. */
export const applyManifests = (kubeconfig: string, manifests: object[]): Promise<string> =>
  kubectlOk(kubeconfig, ['apply', '-f', '-'], manifests.map((manifest) => stringify(manifest)).join('---\n'));

/** `kubectl patch` arguments for a merge patch of a TaskApi's spec. */
export const taskApiPatch = (name: string, namespace: string, spec: object): string[] => [
  'patch',
  'taskapi',
  name,
  '-n',
  namespace,
  '--type',
  'merge',
  '-p',
  JSON.stringify({ spec }),
];

/** `kubectl patch` arguments for the one field edit a user makes to move a TaskApi to another state store. */
export const stateBackendPatch = (name: string, namespace: string, backend: string): string[] =>
  taskApiPatch(name, namespace, { stateBackend: backend });

/** `kubectl get events` of the TaskApis in `namespace`, oldest first, printed with `output` (`-o`). */
export const taskApiEvents = (kubeconfig: string, namespace: string, output: string): Promise<string> =>
  kubectlOk(kubeconfig, [
    'get',
    'events',
    '-n',
    namespace,
    '--field-selector',
    'involvedObject.kind=TaskApi',
    '--sort-by=.metadata.resourceVersion',
    '-o',
    output,
  ]);

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

export interface PortForward {
  url: string;
  stop(): Promise<void>;
}

/**
 * `kubectl port-forward <target> :<port>` on the host, on a free local port;
 * resolves once it listens, and lives until stopped. kubectl forwards to one
 * pod chosen at start and exits when that pod goes (a rollout); with
 * `keepAlive` it is started again on the same local port, so the URL stays.
 */
export async function portForward(
  kubeconfig: string,
  namespace: string,
  target: string,
  port: number,
  options: { keepAlive?: boolean } = {},
): Promise<PortForward> {
  let stopped = false;
  const isStopped = (): boolean => stopped;
  let child: ChildProcess | undefined;
  const start = async (localPort: number): Promise<number> => {
    const started = spawn(
      kubectlBinary(),
      [
        '--kubeconfig',
        kubeconfig,
        'port-forward',
        '-n',
        namespace,
        '--address=127.0.0.1',
        target,
        `${localPort || ''}:${port}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = started;
    let output = '';
    started.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    started.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    let listening = 0;
    await waitUntil(
      () => {
        listening = Number(/Forwarding from 127\.0\.0\.1:(\d+)/.exec(output)?.[1] ?? 0);
        return Promise.resolve(listening > 0 || started.exitCode !== null);
      },
      { what: `kubectl port-forward ${target}`, timeoutMs: 30_000 },
    );
    if (started.exitCode !== null) throw new Error(`kubectl port-forward ${target} exited: ${output}`);
    if (options.keepAlive) {
      started.once('exit', () => {
        const again = async (): Promise<void> => {
          while (!isStopped()) {
            await new Promise((resolve) => setTimeout(resolve, 500));
            if (isStopped()) return;
            try {
              await start(listening);
              return;
            } catch {
              // The target has no ready pod yet (a rollout); try again.
            }
          }
        };
        void again();
      });
    }
    return listening;
  };
  const localPort = await start(0);
  return {
    url: `http://127.0.0.1:${localPort}`,
    stop: async () => {
      stopped = true;
      const running = child;
      if (!running || running.exitCode !== null) return;
      const exited = new Promise((resolve) => running.once('exit', resolve));
      running.kill('SIGTERM');
      await exited;
    },
  };
}
