/**
 * Supervised child processes for the test bed.
 *
 * Every process runs under `setpriv --pdeathsig KILL`, so the kernel kills it
 * when the Node process that started it dies, however it dies (a crashed or
 * SIGKILLed test worker included). Output goes straight to a log file, whose
 * tail is what a failing start or test prints.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, type Dirent } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';

export interface StartOptions {
  /** Short name used in logs and error messages, e.g. `kube-apiserver`. */
  name: string;
  command: string;
  args: string[];
  /** Directory the log file `<name>.log` is written to. */
  logDir: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Run as this system user (needs root), e.g. PostgreSQL refuses to run as root. */
  user?: string;
  /** Signal that asks the program to shut down cleanly. */
  stopSignal?: NodeJS.Signals;
  /**
   * Run inside the network, PID and mount namespaces of this process (a real
   * node's init, see node-namespace.ts). nsenter forks to enter a PID namespace
   * and does not pass signals on, so the program gets its stop signal as a
   * parent-death signal when nsenter is stopped.
   */
  enter?: number;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const running = new Set<ManagedProcess>();

// Last line of defence on a normal exit of the Node process; pdeathsig covers the rest.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export class ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  private readonly options: StartOptions;
  private readonly stopSignal: NodeJS.Signals;
  private child!: ChildProcess;
  private exitPromise!: Promise<ExitStatus>;
  private exitStatus: ExitStatus | undefined;

  private constructor(options: StartOptions) {
    this.name = options.name;
    this.options = options;
    this.stopSignal = options.stopSignal ?? 'SIGTERM';
    this.logFile = join(options.logDir, `${options.name}.log`);
    mkdirSync(options.logDir, { recursive: true });
    this.spawn();
  }

  private spawn(): void {
    const options = this.options;
    const logFd = openSync(this.logFile, 'a');
    const setprivArgs = [
      '--pdeathsig',
      'KILL',
      ...asUser(options.user),
      '--',
      ...entering(options.enter, this.stopSignal),
      options.command,
      ...options.args,
    ];
    const child = spawn('setpriv', setprivArgs, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', logFd, logFd],
    });
    closeSync(logFd);
    this.child = child;
    this.exitStatus = undefined;
    this.exitPromise = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        running.delete(this);
        resolve(this.exitStatus);
      });
      child.once('error', (error) => {
        this.exitStatus = { code: null, signal: null };
        running.delete(this);
        resolve(this.exitStatus);
        console.error(`[testbed] ${this.name} could not be started: ${error.message}`);
      });
    });
    running.add(this);
  }

  /** Resolves when the process (its current run, after a restart) has exited. */
  get exited(): Promise<ExitStatus> {
    return this.exitPromise;
  }

  static start(options: StartOptions): ManagedProcess {
    return new ManagedProcess(options);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Set once the process has exited. */
  get exitedWith(): ExitStatus | undefined {
    return this.exitStatus;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.exitStatus === undefined) this.child.kill(signal);
  }

  /** Asks for a clean shutdown, then kills after `graceMs`. Resolves once the process is gone. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.exitStatus !== undefined) return;
    this.kill(this.stopSignal);
    const timer = setTimeout(() => {
      this.kill('SIGKILL');
    }, graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /**
   * A crash and a restart, as a supervisor (systemd, a kubelet's static pod)
   * gives one: `signal` goes to the program itself (inside a node's namespace
   * too, where nsenter is only its parent), then the same command starts again
   * with the same arguments, ports and data directory. Resolves with the new
   * PID once it runs.
   */
  async restart(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | undefined> {
    if (this.exitStatus === undefined) {
      const program = this.options.enter === undefined ? this.child.pid : onlyChild(this.child.pid);
      if (program !== undefined) process.kill(program, signal);
      const timer = setTimeout(() => {
        this.kill('SIGKILL');
      }, 10_000);
      await this.exited;
      clearTimeout(timer);
    }
    this.spawn();
    return this.child.pid;
  }

  /** The last `lines` lines of the process's log. */
  tail(lines = 40): string {
    let text: string;
    try {
      text = readFileSync(this.logFile, 'utf8');
    } catch {
      return '(no log written)';
    }
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  }
}

/** The one child of `pid`: nsenter forks into the PID namespace, and that child (setpriv) execs the program. */
function onlyChild(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    return children.length === 1 ? Number(children[0]) : pid;
  } catch {
    return pid;
  }
}

function entering(pid: number | undefined, stopSignal: NodeJS.Signals): string[] {
  if (pid === undefined) return [];
  const signal = stopSignal.replace(/^SIG/, '');
  return ['nsenter', `--target=${pid}`, '--net', '--pid', '--mount', '--', 'setpriv', '--pdeathsig', signal, '--'];
}

function asUser(user: string | undefined): string[] {
  if (user === undefined || userInfo().uid !== 0) return [];
  return ['--reuid', user, '--regid', user, '--init-groups'];
}

/** Every process a test bed started, with its log tail; printed when something failed. */
export function describeLogs(processes: Iterable<ManagedProcess>, lines = 40): string {
  const parts: string[] = [];
  for (const child of processes) {
    const state = child.exitedWith
      ? `exited (code ${child.exitedWith.code}, signal ${child.exitedWith.signal})`
      : `running (pid ${child.pid})`;
    parts.push(`----- ${child.name}: ${state}; last ${lines} lines of ${child.logFile}\n${child.tail(lines)}`);
  }
  return parts.join('\n');
}

export class StartupError extends Error {
  constructor(message: string, logs: string) {
    super(`${message}\n${logs}`);
    this.name = 'StartupError';
  }
}

export interface WaitOptions {
  /** What is awaited, for the error message: "kube-apiserver to become ready". */
  what: string;
  timeoutMs: number;
  intervalMs?: number;
  /** Processes whose early exit aborts the wait, and whose logs the error shows. */
  watch?: ManagedProcess[];
}

/** Polls `check` until it returns true; fails fast when a watched process exits. */
export async function waitUntil(check: () => Promise<boolean>, options: WaitOptions): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  const watched = options.watch ?? [];
  let lastError: unknown;
  for (;;) {
    const dead = watched.find((child) => child.exitedWith !== undefined);
    if (dead) {
      throw new StartupError(`${dead.name} exited while waiting for ${options.what}`, describeLogs(watched));
    }
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const cause = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new StartupError(
        `timed out after ${options.timeoutMs} ms waiting for ${options.what}${cause}`,
        describeLogs(watched),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 100));
  }
}

/** The last lines of every `*.log` file below `dir`: all the test bed's components, daprd included. */
export function logTailsUnder(dir: string, lines = 40): string {
  return logFilesUnder(dir)
    .map((file) => {
      let text: string;
      try {
        text = readFileSync(join(dir, file), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch (error) {
        // Gone since it was listed (a container removed meanwhile).
        text = `(unreadable: ${(error as Error).message})`;
      }
      return `----- ${file}: last ${lines} lines\n${text}`;
    })
    .join('\n');
}

/**
 * The `*.log` files below `dir`, walked by hand: a recursive readdir fails as a
 * whole when a directory goes while it reads (containerd removes snapshots all
 * the time), and a container's root file system holds no log of ours anyway.
 */
function logFilesUnder(dir: string, prefix = ''): string[] {
  let entries: Dirent[];
  try {
    entries = readdirSync(join(dir, prefix), { withFileTypes: true });
  } catch {
    return [];
  }
  const found: string[] = [];
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory() && !entry.name.startsWith('io.containerd.')) found.push(...logFilesUnder(dir, path));
    else if (entry.isFile() && entry.name.endsWith('.log')) found.push(path);
  }
  return found;
}
