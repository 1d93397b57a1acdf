/**
 * bench/swap: a swap of 10,000 tasks from Redis to PostgreSQL under a steady
 * client load, on real daprd (two service replicas, each with its own daprd
 * loading both stores), driven by the operator's own swap driver
 * (src/controller/swap.ts) as the operator drives it. In the same run, under
 * the same load, a raw daprd bulk save of the same 10,000 documents into the
 * same PostgreSQL Component (under keys of their own), 500 a request.
 *
 * It prints the copy rate (tasks per second through Backfill) next to the raw
 * bulk save's (goal: >= 0.5x), the time from the start of the swap to
 * Completed, the longest write fence, and the client requests refused or
 * failed (goal: 0), and checks that every acknowledged write is there.
 *
 *   npm run bench:swap
 */
import { names } from '../src/controller/names.ts';
import { DEFAULT_SWAP_SETTINGS, startSwap } from '../src/controller/swap.ts';
import { compileSources } from '../testbed/harness/operator.ts';
import { startTestbed, testbedInfo } from '../testbed/harness/testbed.ts';
import { jsonClient } from '../test/support/http.ts';
import { driveSwap, emptyModel, lostOrWrong, runLoad, seed, swapPods } from '../test/support/swap-load.ts';
import { allTasks, startTaskServiceStack } from '../test/support/task-service-stack.ts';
import { bulkSave, fill, taskLayout } from './fill.ts';

const TASKS = Number(process.env['BENCH_TASKS'] ?? 10_000);
/** Client workers during the whole measurement, each on tasks of its own. */
const WORKERS = 4;
const CONTROL_TOKEN = 'bench-swap-control-token-0123456789';
const SETTINGS = { ...DEFAULT_SWAP_SETTINGS, fenceTimeoutMs: 10_000, stepTimeoutMs: 5_000 };

const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

// The service runs compiled, as in its image.
compileSources();
const testbed = await startTestbed();
try {
  const info = testbedInfo(testbed);
  const stack = await startTaskServiceStack(info, {
    name: 'bench-swap',
    backend: 'redis',
    stores: info,
    swap: { controlToken: CONTROL_TOKEN, replicas: 2 },
  });
  try {
    const redis = names.stateComponent(stack.taskApi, 'redis');
    const postgresql = names.stateComponent(stack.taskApi, 'postgresql');
    const filled = new Set(await fill(stack, 'redis', TASKS));
    console.log(`[bench:swap] ${TASKS} tasks on Redis`);
    const apis = stack.replicas.map((replica) => jsonClient(replica.url));
    const model = emptyModel();
    // The client works on tasks of its own: 200 created through the API, so it knows their content.
    await seed(apis, model, 200);
    const { promise: stopLoad, resolve: endLoad } = Promise.withResolvers<undefined>();
    const load = runLoad(apis, model, WORKERS, stopLoad);

    // The raw bulk save of the same documents, under keys of their own, in the same PostgreSQL Component.
    const { documents } = taskLayout(TASKS);
    const raw = documents.map(({ key, value }) => ({ key: `bench-raw|${key}`, value }));
    const rawStarted = performance.now();
    await bulkSave(stack, postgresql, raw);
    const rawMs = performance.now() - rawStarted;
    const requestsBefore = model.requests;

    const pods = swapPods(() => stack.replicas.map((replica) => replica.url), CONTROL_TOKEN);
    const started = performance.now();
    const result = await driveSwap(
      pods,
      SETTINGS,
      startSwap({ component: redis, generation: '0' }, { component: postgresql, generation: 'g1' }, 0),
    );
    const swapMs = performance.now() - started;
    endLoad(undefined);
    await load;
    if (result.state.phase !== 'Completed') {
      throw new Error(`the swap stopped at ${result.state.phase}: ${result.blocked.slice(-3).join('; ')}`);
    }
    const at = (phase: string) => result.phases.find((entry) => entry.phase === phase)?.at ?? Number.NaN;
    const backfillMs = at('Verify') - at('Backfill');
    const copied = TASKS + model.tasks.size + model.deleted.size;
    const copyRate = copied / (backfillMs / 1000);
    const rawRate = TASKS / (rawMs / 1000);
    const check = jsonClient(stack.replicas[1]?.url ?? stack.url);
    // The filled tasks are not the client's: it compares its own, and counts the others.
    const { problems } = await lostOrWrong(check, model, filled);
    const listed = new Set((await allTasks(check, 100)).map((task) => task.id));
    const missing = [...filled].filter((id) => !listed.has(id)).length;
    if (missing > 0) problems.push(`${missing} of the ${TASKS} filled tasks are not listed after the swap`);
    console.log(
      `[bench:swap] raw daprd bulk save into PostgreSQL: ${TASKS} documents in ${seconds(rawMs)} (${rawRate.toFixed(0)}/s)`,
    );
    console.log(
      `[bench:swap] copier (Backfill): about ${copied} tasks in ${seconds(backfillMs)} (${copyRate.toFixed(0)}/s): ` +
        `${(copyRate / rawRate).toFixed(2)}x the raw bulk save (goal >= 0.5x)`,
    );
    console.log(
      `[bench:swap] start to Completed: ${seconds(swapMs)}; phases ` +
        result.phases.map(({ phase, at: ms }) => `${phase} @${seconds(ms)}`).join(', '),
    );
    console.log(
      `[bench:swap] longest write fence ${result.state.longestFenceMs.toFixed(0)} ms, flip retries ${result.state.flipRetries}`,
    );
    console.log(
      `[bench:swap] client: ${model.requests - requestsBefore} requests during the swap, ${model.requests} in all; ` +
        `${model.failures.length} refused or failed (goal 0); ${model.wrongReads.length} wrong reads; ` +
        `${problems.length} acknowledged writes lost or wrong after it`,
    );
    for (const line of [...model.failures, ...model.wrongReads, ...problems].slice(0, 10)) console.log(`  ${line}`);
  } finally {
    await stack.stop();
  }
} finally {
  await testbed.stop();
}
