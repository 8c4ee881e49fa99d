// A failed step's retry window: the build stays open, waiting for a `retry` signal (run the
// step again, perhaps with a new context) or an `abort` (fail with the step's error).
import { condition, defineSignal, log, setHandler } from '@temporalio/workflow';
import type { BuildProgress, RetryRequest } from './types.js';

export const retrySignal = defineSignal<[RetryRequest?]>('retry');
export const abortSignal = defineSignal<[]>('abort');

const DIGEST = /^sha256:[0-9a-f]{64}$/;

export class RetryGate {
  private retries = 0;
  private aborted = false;
  private waiting = 0;

  constructor(
    private readonly windowMs: number,
    private readonly progress: BuildProgress,
    /** Called when a retry names a new context, before any step runs again. */
    private readonly onContext: (digest: RetryRequest['contextDigest'] & string) => void,
  ) {
    setHandler(retrySignal, (req) => {
      // A retry with no step waiting has nothing to retry: keep it from reviving a later failure.
      if (this.waiting === 0) return;
      const digest = req?.contextDigest;
      if (digest !== undefined && !(typeof digest === 'string' && DIGEST.test(digest))) {
        log.warn('retry: ignoring a contextDigest that is not sha256:<hex>', { digest });
      } else if (digest) {
        this.onContext(digest);
      }
      this.retries++;
      this.progress.retries = this.retries;
    });
    // An abort while nothing waits makes the next failure final at once.
    setHandler(abortSignal, () => {
      this.aborted = true;
    });
  }

  /**
   * Waits for a decision on a failed step: true to run it again, false (abort, or the window
   * passed) to fail. Several stages may wait at once; one `retry` releases them all.
   * `summary` names the wait on its timer, as the Web UI's timeline shows it.
   */
  async shouldRetry(onWaitChange: (waiting: boolean) => void, summary?: string): Promise<boolean> {
    if (this.windowMs <= 0 || this.aborted) return false;
    const seen = this.retries;
    if (this.waiting++ === 0) {
      this.progress.waitingUntil = new Date(Date.now() + this.windowMs).toISOString();
      onWaitChange(true);
    }
    try {
      const done = () => this.retries > seen || this.aborted;
      const decided = await (summary ? condition(done, this.windowMs, { summary }) : condition(done, this.windowMs));
      return decided && !this.aborted;
    } finally {
      if (--this.waiting === 0) {
        this.progress.waitingUntil = undefined;
        onWaitChange(false);
      }
    }
  }
}
