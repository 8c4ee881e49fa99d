// Activity options the workflows share. User errors are thrown by activities as
// non-retryable failures; these limits cover the rest (lost workers, flaky I/O).
import type { ActivityOptions } from '@temporalio/workflow';

/** Short activities: planning, resolving a base, committing. */
export const QUICK: ActivityOptions = {
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5 },
};

/** Long activities that heartbeat (copying, saving, packing, cloning): a lost worker shows within 2 minutes. */
export const LONG: ActivityOptions = {
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute', maximumAttempts: 5 },
};

/**
 * A stage's steps on builds that route them to one worker (workflows/sticky.ts): they beat
 * every 10 seconds, so a lost worker shows within 30 and the step moves to another.
 */
export const STEP: ActivityOptions = { ...LONG, heartbeatTimeout: '30 seconds' };
