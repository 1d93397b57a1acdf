/** A stop flag with an interruptible sleep: a loop waiting between tries ends at once when stopped. */
export class StopSignal {
  private stopped = false;
  private wake: (() => void) | undefined;

  /** A method, not a field: stop() flips it while loops await, which TS's narrowing cannot see. */
  isStopped(): boolean {
    return this.stopped;
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
