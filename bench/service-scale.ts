/**
 * bench/service-scale: does a request cost the same at 100,000 tasks as at
 * 1,000? For Redis and PostgreSQL, a task service (on real daprd) holding
 * 1,000, 10,000 and 100,000 tasks, each measured in the same run:
 *
 *   create   POST /tasks, p50 and p99 over CREATES creates, 4 at a time;
 *   list     GET /tasks?limit=100, the first page and one from the middle;
 *   status   GET /tasks?status=pending&limit=100, the first page;
 *   RSS      the service's resident memory after the work.
 *
 * Each level is its own app-id (its own keys), filled before its service's
 * first request by writing the index's own layout (src/service/task-index.ts)
 * through daprd's bulk state API, 500 items a request: creating 100,000 tasks
 * one by one would take longer than the measurement it serves. The three run
 * side by side and are measured in ROUNDS alternating rounds, so drift hits
 * all alike. It prints each figure as a ratio of the 1,000-task one (goal <= 1.2).
 *
 *   npm run bench:service-scale
 */
import { readFileSync } from 'node:fs';
import { PAGE_SIZE } from '../src/service/task-index.ts';
import { fill } from './fill.ts';
import { compileSources } from '../testbed/harness/operator.ts';
import { startTestbed, testbedInfo } from '../testbed/harness/testbed.ts';
import { startTaskServiceStack, type TaskServiceStack } from '../test/support/task-service-stack.ts';

const LEVELS = [1_000, 10_000, 100_000];
const ROUNDS = 3;
/** Per level and round. */
const CREATES = Number(process.env['BENCH_CREATES'] ?? 150);
const LISTS = 20;

interface Samples {
  creates: number[];
  listFirst: number[];
  listMiddle: number[];
  statusFirst: number[];
}

interface Figures {
  createP50: number;
  createP99: number;
  listFirst: number;
  listMiddle: number;
  statusFirst: number;
  rssMiB: number;
}

const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
};

async function timed(run: () => Promise<Response>): Promise<number> {
  const started = performance.now();
  const response = await run();
  if (!response.ok) throw new Error(`answered ${response.status}: ${await response.text()}`);
  await response.arrayBuffer();
  return performance.now() - started;
}

/** One round at one level: CREATES creates, 4 at a time, then LISTS of each listing. */
async function round(stack: TaskServiceStack, count: number, samples: Samples): Promise<void> {
  const post = (n: number) => () =>
    fetch(`${stack.url}/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ title: `measured ${n}` }),
    });
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < CREATES) samples.creates.push(await timed(post(next++)));
    }),
  );
  const middle = `all.${Math.floor(count / 2 / PAGE_SIZE)}.0`;
  for (const [key, path] of [
    ['listFirst', '/tasks?limit=100'],
    ['listMiddle', `/tasks?limit=100&cursor=${middle}`],
    ['statusFirst', '/tasks?status=pending&limit=100'],
  ] as const) {
    for (let n = 0; n < LISTS; n++) samples[key].push(await timed(() => fetch(`${stack.url}${path}`)));
  }
}

function figures(stack: TaskServiceStack, samples: Samples): Figures {
  const status = readFileSync(`/proc/${stack.process.pid}/status`, 'utf8');
  return {
    createP50: percentile(samples.creates, 50),
    createP99: percentile(samples.creates, 99),
    listFirst: percentile(samples.listFirst, 50),
    listMiddle: percentile(samples.listMiddle, 50),
    statusFirst: percentile(samples.statusFirst, 50),
    rssMiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024,
  };
}

// The service runs compiled, as in its image.
compileSources();
const testbed = await startTestbed();
try {
  const info = testbedInfo(testbed);
  for (const backend of ['redis', 'postgresql'] as const) {
    const levels: { count: number; stack: TaskServiceStack; samples: Samples }[] = [];
    try {
      for (const count of LEVELS) {
        const stack = await startTaskServiceStack(info, { name: `scale-${backend}-${count}`, backend, stores: info });
        levels.push({ count, stack, samples: { creates: [], listFirst: [], listMiddle: [], statusFirst: [] } });
        const filling = performance.now();
        await fill(stack, backend, count);
        console.log(
          `[bench:service-scale] ${backend}: ${count} tasks written in ${((performance.now() - filling) / 1000).toFixed(1)}s`,
        );
        // Warm-up, not counted.
        await round(stack, count, { creates: [], listFirst: [], listMiddle: [], statusFirst: [] });
      }
      for (let n = 0; n < ROUNDS; n++) {
        for (const level of n % 2 === 0 ? levels : [...levels].reverse())
          await round(level.stack, level.count, level.samples);
      }
      const results = levels.map((level) => [level.count, figures(level.stack, level.samples)] as const);
      const base = results[0]?.[1];
      if (!base) continue;
      const ms = (value: number) => `${value.toFixed(2)} ms`;
      for (const [count, result] of results) {
        const ratio = (key: keyof Figures) => (result[key] / base[key]).toFixed(2);
        console.log(
          `[bench:service-scale] ${backend} ${String(count).padStart(7)} tasks: ` +
            `create p50 ${ms(result.createP50)} (${ratio('createP50')}), p99 ${ms(result.createP99)} (${ratio('createP99')}); ` +
            `list first ${ms(result.listFirst)} (${ratio('listFirst')}), middle ${ms(result.listMiddle)} (${ratio('listMiddle')}); ` +
            `?status= ${ms(result.statusFirst)} (${ratio('statusFirst')}); RSS ${result.rssMiB.toFixed(1)} MiB (${ratio('rssMiB')})`,
        );
      }
    } finally {
      for (const level of levels) await level.stack.stop();
    }
  }
  console.log('[bench:service-scale] goal: every ratio to the 1,000-task figure <= 1.2');
} finally {
  await testbed.stop();
}
