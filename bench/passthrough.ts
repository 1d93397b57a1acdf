/**
 * The least any service between a client and daprd can cost: a bare node:http
 * pass-through (no framework, no validation, no Dapr SDK, one daprd call per
 * request). bench/service runs it as a third target, so its ratio shows the
 * ceiling this machine puts on every service that sits in front of daprd.
 *
 *   PASSTHROUGH_PORT=... DAPR_STATE_URL=http://127.0.0.1:3500/v1.0/state/store node bench/passthrough.ts
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

const http = process.getBuiltinModule('node:http');
const port = Number(process.env['PASSTHROUGH_PORT']);
const stateUrl = process.env['DAPR_STATE_URL'] ?? '';
// Dapr's API token, as a service in the same pod would send it.
const apiToken = process.env['DAPR_API_TOKEN'] ?? '';
const agent = new http.Agent({ keepAlive: true });

function body(message: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    message.setEncoding('utf8');
    message.on('data', (chunk: string) => {
      text += chunk;
    });
    message.on('end', () => {
      resolve(text);
    });
    message.on('error', reject);
  });
}

function daprd(method: string, url: string, payload?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      { method, agent, headers: { 'content-type': 'application/json', 'dapr-api-token': apiToken } },
      (answer) => {
        body(answer).then((text) => {
          resolve({ status: answer.statusCode ?? 0, text });
        }, reject);
      },
    );
    request.on('error', reject);
    request.end(payload);
  });
}

async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
  if (request.method === 'POST' && request.url === '/tasks') {
    const id = randomUUID();
    const task = { id, ...(JSON.parse(await body(request)) as object) };
    const saved = await daprd('POST', stateUrl, JSON.stringify([{ key: `task|${id}`, value: task }]));
    response.writeHead(saved.status < 300 ? 201 : 502, { 'content-type': 'application/json' });
    response.end(JSON.stringify(task));
    return;
  }
  const id = /^\/tasks\/([^/]+)$/.exec(request.url ?? '')?.[1];
  if (request.method === 'GET' && id !== undefined) {
    const found = await daprd('GET', `${stateUrl}/task|${id}`);
    response.writeHead(found.status === 200 ? 200 : 404, { 'content-type': 'application/json' });
    response.end(found.text);
    return;
  }
  response.writeHead(404).end();
}

http
  .createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      response.writeHead(500).end(String(error));
    });
  })
  .listen(port, '127.0.0.1', () => {
    console.log(`passthrough listening on ${port}`);
  });
