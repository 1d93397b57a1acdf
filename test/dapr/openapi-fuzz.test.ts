/**
 * The task API fuzzed from its own OpenAPI document: schemathesis (`--checks
 * all`, a fixed seed, a bounded number of examples) against the service on real
 * daprd, on both state backends, with and without the API token. Every check
 * must pass: the document describes what the running configuration enforces,
 * and the service answers what the document promises.
 */
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StateBackend } from '../../src/api/resource.ts';
import { schemathesisBinary } from '../../testbed/harness/prerequisites.ts';
import { startTaskServiceStack, type TaskServiceStack } from '../support/task-service-stack.ts';

const testbed = inject('testbed');
const TOKEN = 'tok-fuzz-8c1e5a0b47d2';
/** Fixed, so a failure found once is found again by the next run. */
const SEED = 20261201;
const MAX_EXAMPLES = 40;
/** The one rule OpenAPI cannot state (a status in the body or the query), for the generator. */
const HOOKS = fileURLToPath(new URL('../support/schemathesis_hooks.py', import.meta.url));

interface FuzzRun {
  code: number;
  output: string;
}

/** Runs schemathesis against one service; resolves with its exit code and everything it printed. */
function schemathesis(url: string, token: string | undefined, dir: string): Promise<FuzzRun> {
  const args = [
    'run',
    `${url}/openapi.json`,
    '--checks',
    'all',
    '--seed',
    String(SEED),
    '--max-examples',
    String(MAX_EXAMPLES),
    // One: hypothesis's lambda descriptions race in Python 3.11's parser on several threads.
    '--workers',
    '1',
    '--request-timeout',
    '15',
    '--no-color',
    ...(token === undefined ? [] : ['--header', `Authorization: Bearer ${token}`]),
  ];
  return new Promise((resolve, reject) => {
    execFile(
      schemathesisBinary(),
      args,
      {
        // Its own directory: schemathesis keeps a cache of past failures in .schemathesis/ under the cwd,
        // and a run must not replay another's.
        cwd: dir,
        timeout: 240_000,
        maxBuffer: 16 * 1024 * 1024,
        env: { ...process.env, SCHEMATHESIS_TELEMETRY: 'false', SCHEMATHESIS_HOOKS: HOOKS },
      },
      (error, stdout, stderr) => {
        const output = `${stdout}${stderr}`;
        if (error && typeof error.code !== 'number') {
          reject(new Error(`schemathesis did not finish: ${error.message}\n${output}`));
        } else {
          resolve({ code: typeof error?.code === 'number' ? error.code : 0, output });
        }
      },
    );
  });
}

/** The summary's figures: operations tested, and cases generated and passed. */
function summaryOf(output: string): { tested: number; generated: number; passed: number } {
  const tested = /Tested:\s+(\d+)/.exec(output);
  const cases = /(\d+) generated, (\d+) passed/.exec(output);
  return { tested: Number(tested?.[1] ?? 0), generated: Number(cases?.[1] ?? 0), passed: Number(cases?.[2] ?? 0) };
}

const cases: { backend: StateBackend; token: string | undefined }[] = [
  { backend: 'redis', token: undefined },
  { backend: 'redis', token: TOKEN },
  { backend: 'postgresql', token: undefined },
  { backend: 'postgresql', token: TOKEN },
];

describe.each(cases)('the task API on state.$backend, fuzzed from its OpenAPI', ({ backend, token }) => {
  let stack: TaskServiceStack;
  const name = `fuzz-${backend === 'redis' ? 'r' : 'p'}${token === undefined ? '' : 't'}`;
  beforeAll(async () => {
    stack = await startTaskServiceStack(testbed, {
      name,
      backend,
      stores: testbed,
      ...(token === undefined ? {} : { apiToken: token }),
    });
  });
  afterAll(() => stack.stop());

  it(`passes every check ${token === undefined ? 'without' : 'with'} an API token`, { timeout: 300_000 }, async () => {
    const dir = join(testbed.dir, 'schemathesis', name);
    mkdirSync(dir, { recursive: true });
    const run = await schemathesis(stack.url, token, dir);
    const summary = summaryOf(run.output);
    const phases = run.output.split('\n').filter((line) => /^\s*\S+\s+(Coverage|Fuzzing|Stateful) \(/.test(line));
    console.log(
      `[fuzz] state.${backend}, ${token === undefined ? 'no token' : 'token'}: ${summary.tested} operations, ` +
        `${summary.generated} cases generated, ${summary.passed} passed, exit ${run.code}; ` +
        phases.map((line) => line.trim()).join('; '),
    );
    expect(run.code, run.output).toBe(0);
    // Every documented operation was reached, and by more than a handful of cases each.
    expect(summary.tested, run.output).toBe(6);
    expect(summary.generated, run.output).toBeGreaterThan(100);
    expect(summary.passed).toBe(summary.generated);
  });
});
