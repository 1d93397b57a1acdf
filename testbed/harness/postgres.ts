import { execFile, execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.ts';
import { postgresBinDir } from './prerequisites.ts';
import { ManagedProcess, StartupError, waitUntil } from './process.ts';

const run = promisify(execFile);

export interface PostgresServer {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** A libpq keyword/value connection string, Dapr's `connectionString` form. */
  connectionString: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/** PostgreSQL refuses to run as root; as root the cluster runs as Debian's `postgres` user. */
const SERVICE_USER = 'postgres';
const runsAsRoot = (): boolean => userInfo().uid === 0;

/**
 * A throwaway PostgreSQL cluster (Debian's server) on loopback with password
 * authentication over TCP. Pass `port` to restart an existing cluster in `dir`.
 * `durable` keeps synchronous commits, so a killed server comes back with every
 * acknowledged commit (the machine surviving, fsync stays off).
 * As root, `dir`'s parents must be traversable by the `postgres` user.
 */
export async function startPostgres(
  dir: string,
  password: string,
  port?: number,
  durable = false,
): Promise<PostgresServer> {
  const bin = postgresBinDir();
  const dataDir = join(dir, 'data');
  const user = 'postgres';
  if (port === undefined) await initCluster(bin, dir, dataDir, user, password);
  const listenPort = port ?? (await freePort());
  const child = ManagedProcess.start({
    name: 'postgres',
    command: join(bin, 'postgres'),
    args: [
      '-D',
      dataDir,
      '-p',
      String(listenPort),
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      `unix_socket_directories=${dir}`,
      // A throwaway cluster: durability buys nothing here.
      '-c',
      'fsync=off',
      '-c',
      `synchronous_commit=${durable ? 'on' : 'off'}`,
      '-c',
      'full_page_writes=off',
      '-c',
      'max_connections=200',
    ],
    logDir: dir,
    user: SERVICE_USER,
    // "Fast" shutdown: roll back open transactions and exit.
    stopSignal: 'SIGINT',
  });
  const postgres: PostgresServer = {
    host: '127.0.0.1',
    port: listenPort,
    user,
    password,
    database: 'postgres',
    connectionString: `host=127.0.0.1 port=${listenPort} user=${user} password=${password} dbname=postgres sslmode=disable`,
    process: child,
    stop: () => child.stop(),
  };
  await waitUntil(
    async () => {
      await run(join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(listenPort), '-q']);
      return true;
    },
    { what: 'PostgreSQL to accept connections', timeoutMs: 30_000, watch: [child] },
  );
  return postgres;
}

async function initCluster(bin: string, dir: string, dataDir: string, user: string, password: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const passwordFile = join(dir, 'pwfile');
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  if (runsAsRoot()) {
    const { uid, gid } = serviceUserIds();
    for (const path of [dir, passwordFile]) chownSync(path, uid, gid);
  }
  const args = [
    '-D',
    dataDir,
    '-U',
    user,
    `--pwfile=${passwordFile}`,
    '--auth-local=trust',
    '--auth-host=scram-sha-256',
    '--no-sync',
    '--encoding=UTF8',
    '--locale=C',
  ];
  const command = runsAsRoot() ? 'setpriv' : join(bin, 'initdb');
  const fullArgs = runsAsRoot()
    ? ['--reuid', SERVICE_USER, '--regid', SERVICE_USER, '--init-groups', '--', join(bin, 'initdb'), ...args]
    : args;
  try {
    await run(command, fullArgs, { cwd: dir });
  } catch (error) {
    const detail = error instanceof Error && 'stderr' in error ? String(error.stderr) : String(error);
    throw new StartupError('initdb failed', detail);
  }
}

function serviceUserIds(): { uid: number; gid: number } {
  try {
    const id = (flag: string): number => Number(execFileSync('id', [flag, SERVICE_USER], { encoding: 'utf8' }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    throw new StartupError(
      `running as root, PostgreSQL needs the '${SERVICE_USER}' system user`,
      "Debian's postgresql package creates it: `apt-get install -y postgresql`",
    );
  }
}
