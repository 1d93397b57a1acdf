/**
 * Vitest global setup for every test that needs real parts: starts the test
 * bed once, hands its addresses to the test files, and stops every process at
 * the end. (Component logs of a failing test are printed by print-logs-on-failure.ts.)
 */
import type { TestProject } from 'vitest/node';
import { compileSources } from '../../testbed/harness/operator.ts';
import { startTestbed, testbedInfo, type TestbedInfo } from '../../testbed/harness/testbed.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    testbed: TestbedInfo;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Tests run the operator as it ships: compiled.
  compileSources();
  const started = performance.now();
  // TESTBED_KEEP=1 keeps the folder (every log) after the run, to read what a failing test left.
  const testbed = await startTestbed({ keepDir: process.env['TESTBED_KEEP'] === '1' });
  const { controlPlane, redis, postgres, scheduler } = testbed.startupSeconds;
  console.log(
    `[testbed] up in ${((performance.now() - started) / 1000).toFixed(1)}s ` +
      `(control plane ${controlPlane.toFixed(1)}s, redis-server ${redis.toFixed(1)}s, ` +
      `PostgreSQL ${postgres.toFixed(1)}s, Dapr scheduler ${scheduler.toFixed(1)}s) in ${testbed.dir}`,
  );
  project.provide('testbed', testbedInfo(testbed));
  return () => testbed.stop();
}
