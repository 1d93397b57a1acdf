/**
 * Crashes on request, for fault tests: the process that started a cluster
 * owns its programs (they die with it), so a test worker asks it, over a Unix
 * socket only root can open, to SIGKILL one of them and start it again, as a
 * supervisor would. `POST /restart/<name>` answers the new PID once the
 * program runs again; a test then waits for what depends on it.
 */
import { chmodSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { ManagedProcess } from './process.ts';

export interface FaultServer {
  socket: string;
  stop(): Promise<void>;
}

export async function serveFaults(socket: string, processes: () => ManagedProcess[]): Promise<FaultServer> {
  const server = createServer((req, res) => {
    const answer = (status: number, body: object) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const match = /^\/restart\/([\w-]+)$/.exec(req.url ?? '');
    if (req.method !== 'POST' || !match) {
      answer(404, { error: 'POST /restart/<process> only' });
      return;
    }
    const target = processes().find((child) => child.name === match[1]);
    if (!target) {
      const names = processes().map((child) => child.name);
      answer(404, { error: `no process ${match[1]}; there are ${names.join(', ')}` });
      return;
    }
    target.restart('SIGKILL').then(
      (pid) => {
        answer(200, { name: target.name, pid });
      },
      (error: unknown) => {
        answer(500, { error: error instanceof Error ? error.message : String(error) });
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, resolve);
  });
  chmodSync(socket, 0o600);
  return {
    socket,
    stop: () =>
      new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      ),
  };
}

/** Asks the cluster's owner to SIGKILL `name` (kube-apiserver, etcd, containerd, …) and start it again. */
export function crashAndRestart(socket: string, name: string): Promise<{ pid: number }> {
  return new Promise((resolve, reject) => {
    const call = request({ socketPath: socket, method: 'POST', path: `/restart/${name}` }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        const body = JSON.parse(text) as { pid: number; error?: string };
        if (res.statusCode === 200) resolve(body);
        else reject(new Error(`restart of ${name} refused: ${body.error ?? text}`));
      });
    });
    call.on('error', reject);
    call.end();
  });
}
