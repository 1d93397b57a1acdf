/**
 * bench/service: what the task service adds on top of Dapr.
 *
 *   service   POST /tasks and GET /tasks/:id sent to the task service (which
 *             appends to two index chains, group-committed, writes the task,
 *             publishes task.created, and reads with getBulk);
 *   baseline  the same mix sent straight to daprd's state HTTP API (save one
 *             key, get one key): same daprd, same store, same concurrency.
 *   passthrough  the same mix sent to a bare node:http pass-through
 *             (bench/passthrough.ts: one daprd call per request, nothing else);
 *             its ratio is the ceiling for any service between client and daprd.
 * Rounds alternate between them so drift hits all alike. For Redis and for
 * PostgreSQL it prints the service's throughput as a ratio of the pass-through's
 * (goal >= 0.8) and the p99 latency it adds over the pass-through (goal <= 2 ms),
 * and both against daprd direct.
 *
 *   npm run bench:service
 *   BENCH_SECONDS=10 BENCH_CONCURRENCY=16 npm run bench:service
 *   BENCH_WRITE_EVERY=1 npm run bench:service        (creates only; 1000000: reads only)
 */
import { join } from 'node:path';
import type { StateBackend } from '../src/api/resource.ts';
import { names } from '../src/controller/names.ts';
import { freePort } from '../testbed/harness/ports.ts';
import { ManagedProcess, waitUntil } from '../testbed/harness/process.ts';
import { compileSources } from '../testbed/harness/operator.ts';
import { startTestbed, testbedInfo } from '../testbed/harness/testbed.ts';
import { startTaskServiceStack, type TaskServiceStack } from '../test/support/task-service-stack.ts';

const ROUND_MS = Number(process.env['BENCH_SECONDS'] ?? 4) * 1000;
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 8);
const ROUNDS = 3;
/** One write in five (BENCH_WRITE_EVERY), the rest reads of tasks written before. */
const WRITE_EVERY = Number(process.env['BENCH_WRITE_EVERY'] ?? 5);

interface Target {
  name: string;
  create(index: number): Promise<string>;
  read(id: string): Promise<void>;
}

interface RoundResult {
  requests: number;
  latenciesMs: number[];
}

async function expectOk(response: Response, what: string): Promise<void> {
  if (!response.ok) throw new Error(`${what} answered ${response.status}: ${await response.text()}`);
}

function httpTarget(name: string, url: string): Target {
  return {
    name,
    async create(index) {
      const response = await fetch(`${url}/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ title: `bench ${index}`, priority: 2 }),
      });
      await expectOk(response, 'POST /tasks');
      return ((await response.json()) as { id: string }).id;
    },
    async read(id) {
      const response = await fetch(`${url}/tasks/${id}`);
      await expectOk(response, 'GET /tasks/:id');
      await response.arrayBuffer();
    },
  };
}

function daprdTarget(stack: TaskServiceStack, storeName: string): Target {
  const base = `${stack.daprd.httpUrl}/v1.0/state/${storeName}`;
  const token = { 'dapr-api-token': stack.daprTokens.api };
  return {
    name: 'daprd',
    async create(index) {
      const id = `direct-${index}-${Math.random().toString(36).slice(2)}`;
      const now = new Date().toISOString();
      const task = { id, title: `bench ${index}`, description: '', status: 'pending', priority: 2 };
      const response = await fetch(base, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...token },
        body: JSON.stringify([{ key: `direct|${id}`, value: { ...task, created_at: now, updated_at: now } }]),
      });
      await expectOk(response, 'daprd save');
      await response.arrayBuffer();
      return id;
    },
    async read(id) {
      const response = await fetch(`${base}/direct|${id}`, { headers: token });
      await expectOk(response, 'daprd get');
      await response.arrayBuffer();
    },
  };
}

async function round(target: Target, seedIds: string[]): Promise<RoundResult> {
  const ids = [...seedIds];
  const latenciesMs: number[] = [];
  let requests = 0;
  const deadline = performance.now() + ROUND_MS;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < deadline) {
        const n = requests++;
        const started = performance.now();
        if (n % WRITE_EVERY === 0) ids.push(await target.create(n));
        else await target.read(ids[Math.floor(Math.random() * ids.length)] ?? '');
        latenciesMs.push(performance.now() - started);
      }
    }),
  );
  return { requests, latenciesMs };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** bench/passthrough.ts in its own process, in front of the same daprd and store. */
async function startPassthrough(stack: TaskServiceStack, storeName: string, logDir: string) {
  const port = await freePort();
  const child = ManagedProcess.start({
    name: 'passthrough',
    command: process.execPath,
    args: [join(import.meta.dirname, 'passthrough.ts')],
    logDir,
    env: {
      PATH: process.env.PATH,
      PASSTHROUGH_PORT: String(port),
      DAPR_STATE_URL: `${stack.daprd.httpUrl}/v1.0/state/${storeName}`,
      DAPR_API_TOKEN: stack.daprTokens.api,
    },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(async () => (await fetch(`${url}/tasks/none`)).status === 404, {
    what: 'the pass-through to listen',
    timeoutMs: 10_000,
    watch: [child],
  });
  return { url, stop: () => child.stop() };
}

async function measure(backend: StateBackend, stack: TaskServiceStack, passthroughUrl: string): Promise<void> {
  const targets = [
    httpTarget('service', stack.url),
    daprdTarget(stack, names.stateComponent(stack.taskApi, backend)),
    httpTarget('passthrough', passthroughUrl),
  ];
  const totals = new Map<string, RoundResult>(targets.map((target) => [target.name, { requests: 0, latenciesMs: [] }]));
  const seeds = new Map<string, string[]>();
  for (const target of targets) {
    seeds.set(target.name, await Promise.all(Array.from({ length: 50 }, (_, i) => target.create(i))));
    await round(target, seeds.get(target.name) ?? []); // warm-up, not counted
  }
  for (let i = 0; i < ROUNDS; i++) {
    for (const target of i % 2 === 0 ? targets : [...targets].reverse()) {
      const result = await round(target, seeds.get(target.name) ?? []);
      const total = totals.get(target.name);
      if (!total) continue;
      total.requests += result.requests;
      total.latenciesMs.push(...result.latenciesMs);
    }
  }
  const stats = (name: string) => {
    const total = totals.get(name) ?? { requests: 0, latenciesMs: [] };
    const sorted = [...total.latenciesMs].sort((a, b) => a - b);
    const seconds = (ROUNDS * ROUND_MS) / 1000;
    return { rps: total.requests / seconds, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
  };
  const daprd = stats('daprd');
  const passthrough = stats('passthrough');
  const service = stats('service');
  const ms = (value: number) => `${value.toFixed(2)} ms`;
  for (const [name, front] of [
    ['service', service],
    ['passthrough', passthrough],
    ['daprd', daprd],
  ] as const) {
    console.log(
      `[bench:service] ${backend}: ${name.padEnd(11)} ${front.rps.toFixed(0).padStart(5)} req/s  p50 ${ms(front.p50)}  p99 ${ms(front.p99)}`,
    );
  }
  console.log(
    `[bench:service] ${backend}: service / passthrough throughput ${(service.rps / passthrough.rps).toFixed(2)} (goal >= 0.8); ` +
      `p99 added over the passthrough ${ms(service.p99 - passthrough.p99)} (goal <= 2 ms); ` +
      `passthrough / daprd ${(passthrough.rps / daprd.rps).toFixed(2)}`,
  );
}

console.log(
  `[bench:service] ${CONCURRENCY} concurrent clients, 1 write in ${WRITE_EVERY}, ${ROUNDS} alternating rounds of ${ROUND_MS / 1000} s each`,
);
// The service runs compiled, as in its image.
compileSources();
const testbed = await startTestbed();
try {
  const info = testbedInfo(testbed);
  for (const backend of ['redis', 'postgresql'] as const) {
    const stack = await startTaskServiceStack(info, { name: `bench-${backend}`, backend, stores: info });
    try {
      const passthrough = await startPassthrough(
        stack,
        names.stateComponent(stack.taskApi, backend),
        join(info.dir, 'passthrough', backend),
      );
      try {
        await measure(backend, stack, passthrough.url);
      } finally {
        await passthrough.stop();
      }
    } finally {
      await stack.stop();
    }
  }
} finally {
  await testbed.stop();
}
