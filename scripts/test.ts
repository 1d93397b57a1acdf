/**
 * `npm test`'s runner: the tests in two lanes at once, each its own vitest run.
 *
 * The real node's tests (project `node`: one cluster, one file at a time) take
 * longer than all the others together, and mostly wait on pods; the kwok test
 * bed's (projects `unit`, `testbed`, `swap`) would otherwise wait for them, or
 * they for it. Side by side the whole run takes the node lane's time.
 *
 * Each lane writes its own JSON report; both are merged into test-results.json,
 * which .ci/run summarises. Arguments (`npm test -- test/unit`) run one plain
 * vitest run with them instead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';

interface Lane {
  name: string;
  projects: string[];
}

const LANES: Lane[] = [
  { name: 'kwok', projects: ['unit', 'testbed', 'swap'] },
  { name: 'node', projects: ['node'] },
];

interface Report {
  numTotalTests: number;
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  success: boolean;
  startTime: number;
  testResults: unknown[];
}

const children = new Set<ChildProcess>();
// Ctrl-C reaches the lanes from the terminal already (one process group), and a
// second SIGINT would make vitest exit without its teardown; SIGTERM is passed on.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => {
  for (const child of children) child.kill('SIGTERM');
});

/** Runs vitest with `args` (and `env`), inheriting the terminal; resolves with its exit code. */
function vitest(args: string[], env: Record<string, string> = {}): Promise<number> {
  const child = spawn(process.execPath, [vitestBin(), 'run', ...args], {
    stdio: 'inherit',
    env: { ...process.env, ...env },
  });
  children.add(child);
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

function vitestBin(): string {
  return new URL('../node_modules/vitest/vitest.mjs', import.meta.url).pathname;
}

const reportFile = (lane: Lane): string => `test-results.${lane.name}.json`;

/** The lanes' reports as one, as a single run would have written it; a missing report counts as a failure. */
function mergeReports(): { merged: Report; missing: string[] } {
  const merged: Report = {
    numTotalTests: 0,
    numPassedTests: 0,
    numFailedTests: 0,
    numPendingTests: 0,
    success: true,
    startTime: Date.now(),
    testResults: [],
  };
  const missing: string[] = [];
  for (const lane of LANES) {
    let report: Report;
    try {
      report = JSON.parse(readFileSync(reportFile(lane), 'utf8')) as Report;
    } catch {
      missing.push(lane.name);
      merged.success = false;
      continue;
    }
    merged.numTotalTests += report.numTotalTests;
    merged.numPassedTests += report.numPassedTests;
    merged.numFailedTests += report.numFailedTests;
    merged.numPendingTests += report.numPendingTests;
    merged.success &&= report.success;
    merged.startTime = Math.min(merged.startTime, report.startTime);
    merged.testResults.push(...report.testResults);
  }
  return { merged, missing };
}

const args = process.argv.slice(2);
if (args.length > 0) process.exit(await vitest(args));

for (const lane of LANES) rmSync(reportFile(lane), { force: true });
console.log(`[test] ${LANES.map((lane) => `lane ${lane.name} (${lane.projects.join(', ')})`).join(' beside ')}`);
const started = performance.now();
const codes = await Promise.all(
  LANES.map(async (lane) => {
    const code = await vitest(
      lane.projects.flatMap((project) => ['--project', project]),
      { TEST_RESULTS: reportFile(lane) },
    );
    console.log(`[test] lane ${lane.name} exited ${code} after ${Math.round((performance.now() - started) / 1000)}s`);
    return code;
  }),
);
const { merged, missing } = mergeReports();
writeFileSync('test-results.json', JSON.stringify(merged));
for (const lane of LANES) rmSync(reportFile(lane), { force: true });
console.log(
  `[test] both lanes: ${merged.numPassedTests} passed, ${merged.numFailedTests} failed` +
    (missing.length ? `; no report from lane ${missing.join(', ')}` : ''),
);
process.exit(codes.every((code) => code === 0) && missing.length === 0 ? 0 : 1);
