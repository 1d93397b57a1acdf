import { beforeEach, inject } from 'vitest';
import { logTailsUnder } from '../../testbed/harness/process.ts';

// Every component of the test bed, and every daprd a test starts, logs under the
// test bed's directory; a failing test shows their last lines.
beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    console.error(`[testbed] component logs:\n${logTailsUnder(inject('testbed').dir, 30)}`);
  });
});
