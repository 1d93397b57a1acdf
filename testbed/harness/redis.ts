import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { freePort } from './ports.ts';
import { redisServerBinary } from './prerequisites.ts';
import { ManagedProcess, waitUntil } from './process.ts';

export interface RedisServer {
  host: string;
  port: number;
  /** `127.0.0.1:<port>`, Dapr's `redisHost` form. */
  address: string;
  password: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/**
 * A throwaway redis-server (Debian's) on loopback, password-protected. Nothing
 * is persisted unless `persist` (an append-only file synced on every write, so
 * a killed server comes back with every acknowledged write). Pass `port` to
 * bring a stopped server back on the same address.
 */
export async function startRedis(dir: string, password: string, port?: number, persist = false): Promise<RedisServer> {
  mkdirSync(dir, { recursive: true });
  const listenPort = port ?? (await freePort());
  const child = ManagedProcess.start({
    name: 'redis-server',
    command: redisServerBinary(),
    args: [
      '--bind',
      '127.0.0.1',
      '--port',
      String(listenPort),
      '--requirepass',
      password,
      '--save',
      '',
      '--appendonly',
      persist ? 'yes' : 'no',
      '--appendfsync',
      'always',
      '--dir',
      dir,
      // Keyspace notifications: Dapr's configuration.redis follows changes through them.
      '--notify-keyspace-events',
      'KA',
    ],
    logDir: dir,
  });
  const redis: RedisServer = {
    host: '127.0.0.1',
    port: listenPort,
    address: `127.0.0.1:${listenPort}`,
    password,
    process: child,
    stop: () => child.stop(),
  };
  await waitUntil(() => redisPing(redis), { what: 'redis-server to answer PING', timeoutMs: 15_000, watch: [child] });
  return redis;
}

/** AUTH + PING over RESP; true when the server answers +PONG. */
export function redisPing(redis: Pick<RedisServer, 'host' | 'port' | 'password'>): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(redis.port, redis.host);
    let reply = '';
    socket.setTimeout(2_000, () => socket.destroy());
    socket.on('error', () => {
      resolve(false);
    });
    socket.on('close', () => {
      resolve(reply.includes('+PONG'));
    });
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('+PONG') || reply.startsWith('-')) socket.end();
    });
    socket.write(`AUTH ${redis.password}\r\nPING\r\n`);
  });
}

/** Runs one command (AUTH first) over RESP and resolves with the server's first reply line, e.g. `+OK`. */
export function redisCommand(
  redis: Pick<RedisServer, 'host' | 'port' | 'password'>,
  ...args: string[]
): Promise<string> {
  const encode = (parts: string[]) =>
    `*${parts.length}\r\n${parts.map((part) => `$${Buffer.byteLength(part)}\r\n${part}\r\n`).join('')}`;
  return new Promise((resolve, reject) => {
    const socket = connect(redis.port, redis.host);
    let reply = '';
    socket.setTimeout(5_000, () => socket.destroy(new Error('redis-server did not answer in 5 s')));
    socket.on('error', reject);
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      const lines = reply.split('\r\n');
      // The AUTH answer, then the command's.
      if (lines.length > 2) {
        socket.end();
        if (!lines[0]?.startsWith('+OK')) reject(new Error(`AUTH answered ${lines[0] ?? ''}`));
        else resolve(lines[1] ?? '');
      }
    });
    socket.write(encode(['AUTH', redis.password]) + encode(args));
  });
}
