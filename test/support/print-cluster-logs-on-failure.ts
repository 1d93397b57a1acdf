import { beforeEach, inject } from 'vitest';
import { logTailsUnder } from '../../testbed/harness/process.ts';

// The cluster's processes (control plane, node) log under its directory; a
// failing test shows their last lines. Pod logs are the test's to show.
beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    console.error(`[cluster] component logs:\n${logTailsUnder(inject('cluster').dir, 30)}`);
  });
});
