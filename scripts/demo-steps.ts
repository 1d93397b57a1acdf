/**
 * What both demo tours (the real chain, and kwok without root) share: progress
 * lines, the swap watched from kubectl, the TaskApi's Events, and staying up
 * until Ctrl-C with everything stopped on the way out.
 */
import { taskApiEvents } from '../testbed/harness/kubectl.ts';

export const step = (message: string): void => {
  console.log(`\n==> ${message}`);
};

export type Kubectl = (args: string[]) => Promise<string>;

export const SWAP_PATCH = '{"spec":{"stateBackend":"postgresql"}}';

/**
 * `kubectl patch` to PostgreSQL, then each change of the TaskApi's row and
 * Components: by default until the swap is done (PostgreSQL the truth, the
 * Redis Component gone); `until` stops earlier.
 */
export async function swapToPostgresql(
  k: Kubectl,
  namespace: string,
  until: (row: string, components: string[]) => boolean = (row, components) =>
    row.includes('postgresql') && !components.some((name) => name.endsWith('tasks-state-redis')),
): Promise<void> {
  await patchAndWatch(k, namespace, SWAP_PATCH, until);
}

/** `kubectl patch` the sample TaskApi, then print each change of its row and Components until `until`. */
export async function patchAndWatch(
  k: Kubectl,
  namespace: string,
  patch: string,
  until: (row: string, components: string[]) => boolean,
): Promise<void> {
  step(`kubectl patch taskapi tasks --type merge -p '${patch}'`);
  await k(['patch', 'taskapi', 'tasks', '-n', namespace, '--type', 'merge', '-p', patch]);
  console.log('kubectl get taskapis -o wide, and the Dapr Components, as they change:');
  console.log((await k(['get', 'taskapi', 'tasks', '-n', namespace, '-o', 'wide'])).split('\n')[0]);
  let last = '';
  const deadline = Date.now() + 180_000;
  for (;;) {
    // Components first: the old one goes only after status moved, so a row read after them is never older.
    const components = (await k(['get', 'components.dapr.io', '-n', namespace, '-o', 'name'])).trim().split('\n');
    const row = (await k(['get', 'taskapi', 'tasks', '-n', namespace, '-o', 'wide', '--no-headers'])).trim();
    const line = `${row}   [${components.join(' ')}]`;
    // A row is new when more than its AGE changed.
    const change = line.replace(/^(\S+\s+\S+\s+\S+\s+\S+\s+)\S+/, '$1');
    if (change !== last) console.log(line);
    last = change;
    if (until(row, components)) break;
    if (Date.now() > deadline) throw new Error('the TaskApi did not get there within 180 s');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The TaskApi's Events, oldest first: what `kubectl describe taskapi` shows at its end. */
export const eventTable = (kubeconfig: string, namespace: string): Promise<string> =>
  taskApiEvents(kubeconfig, namespace, 'custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message');

/**
 * Stops everything registered in `stoppers` (newest first) on Ctrl-C, on
 * SIGTERM, at the end of the tour with `--exit`, or after a failure.
 */
export class DemoLifetime {
  readonly stoppers: (() => Promise<void>)[] = [];
  private readonly exitWhenDone: boolean;
  private stopping = false;

  constructor(exitWhenDone: boolean) {
    this.exitWhenDone = exitWhenDone;
    process.on('SIGINT', () => void this.shutdown(0));
    process.on('SIGTERM', () => void this.shutdown(0));
  }

  async shutdown(code: number): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    step('Stopping everything the demo started');
    for (const stop of this.stoppers.reverse()) await stop();
    process.exit(code);
  }

  /** After the tour: stop with `--exit`, else stay up until Ctrl-C. */
  async afterTour(): Promise<void> {
    if (this.exitWhenDone) {
      await this.shutdown(0);
      return;
    }
    step('Running. Press Ctrl-C to stop everything.');
    // Keep the event loop alive until a signal arrives.
    setInterval(() => undefined, 1 << 30);
  }
}
