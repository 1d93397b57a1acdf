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
 *   BENCH_BACKENDS=redis npm run bench:service       (one store)
 */
import { join } from 'node:path';
import { machineCpuMs, processCpuMs } from './cpu.ts';
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
/** Both stores unless BENCH_BACKENDS names some (comma-separated). */
const BACKENDS = (['redis', 'postgresql'] as const).filter((backend) =>
  (process.env['BENCH_BACKENDS'] ?? 'redis,postgresql').split(',').includes(backend),
);

interface Target {
  name: string;
  create(index: number): Promise<string>;
  read(id: string): Promise<void>;
  /** The process answering the bench's requests, if it is not daprd itself. */
  pid?: number | undefined;
}

interface RoundResult {
  requests: number;
  latenciesMs: number[];
  /** CPU milliseconds spent during the round: the whole machine, the front process, daprd, this client. */
  cpu: CpuSpent;
}

interface CpuSpent {
  machine: number;
  front: number;
  daprd: number;
  client: number;
}

function cpuNow(front: number | undefined, daprd: number | undefined): CpuSpent {
  const client = process.cpuUsage();
  return {
    machine: machineCpuMs(),
    front: front === undefined ? 0 : processCpuMs(front),
    daprd: daprd === undefined ? 0 : processCpuMs(daprd),
    client: (client.user + client.system) / 1000,
  };
}

/** `a` and `b` combined field by field. */
function eachCpu(a: CpuSpent, b: CpuSpent, combine: (x: number, y: number) => number): CpuSpent {
  return {
    machine: combine(a.machine, b.machine),
    front: combine(a.front, b.front),
    daprd: combine(a.daprd, b.daprd),
    client: combine(a.client, b.client),
  };
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

async function round(target: Target, seedIds: string[], daprdPid: number | undefined): Promise<RoundResult> {
  const ids = [...seedIds];
  const latenciesMs: number[] = [];
  let requests = 0;
  const cpuAtStart = cpuNow(target.pid, daprdPid);
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
  return { requests, latenciesMs, cpu: eachCpu(cpuNow(target.pid, daprdPid), cpuAtStart, (end, start) => end - start) };
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
  return { url, pid: child.pid, stop: () => child.stop() };
}

async function measure(
  backend: StateBackend,
  stack: TaskServiceStack,
  bare: { url: string; pid: number | undefined },
): Promise<void> {
  const targets = [
    { ...httpTarget('service', stack.url), pid: stack.process.pid },
    daprdTarget(stack, names.stateComponent(stack.taskApi, backend)),
    { ...httpTarget('passthrough', bare.url), pid: bare.pid },
  ];
  const daprdPid = stack.daprd.process.pid;
  const none = (): RoundResult => ({
    requests: 0,
    latenciesMs: [],
    cpu: { machine: 0, front: 0, daprd: 0, client: 0 },
  });
  const totals = new Map<string, RoundResult>(targets.map((target) => [target.name, none()]));
  const seeds = new Map<string, string[]>();
  for (const target of targets) {
    seeds.set(target.name, await Promise.all(Array.from({ length: 50 }, (_, i) => target.create(i))));
    await round(target, seeds.get(target.name) ?? [], daprdPid); // warm-up, not counted
  }
  for (let i = 0; i < ROUNDS; i++) {
    for (const target of i % 2 === 0 ? targets : [...targets].reverse()) {
      const result = await round(target, seeds.get(target.name) ?? [], daprdPid);
      const total = totals.get(target.name);
      if (!total) continue;
      total.requests += result.requests;
      total.latenciesMs.push(...result.latenciesMs);
      total.cpu = eachCpu(total.cpu, result.cpu, (sum, spent) => sum + spent);
    }
  }
  const stats = (name: string) => {
    const total = totals.get(name) ?? none();
    const sorted = [...total.latenciesMs].sort((a, b) => a - b);
    const seconds = (ROUNDS * ROUND_MS) / 1000;
    const perRequest = (ms: number) => (total.requests === 0 ? Number.NaN : ms / total.requests);
    return {
      rps: total.requests / seconds,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      cpu: eachCpu(total.cpu, total.cpu, perRequest),
    };
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
      `[bench:service] ${backend}: ${name.padEnd(11)} ${front.rps.toFixed(0).padStart(5)} req/s  p50 ${ms(front.p50)}  p99 ${ms(front.p99)}  ` +
        `CPU per request: machine ${ms(front.cpu.machine)}, front ${ms(front.cpu.front)}, daprd ${ms(front.cpu.daprd)}, client ${ms(front.cpu.client)}`,
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
  for (const backend of BACKENDS) {
    const stack = await startTaskServiceStack(info, { name: `bench-${backend}`, backend, stores: info });
    try {
      const passthrough = await startPassthrough(
        stack,
        names.stateComponent(stack.taskApi, backend),
        join(info.dir, 'passthrough', backend),
      );
      try {
        await measure(backend, stack, passthrough);
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
