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
