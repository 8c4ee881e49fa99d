// Sticky routing: the steps of a stage go to the worker that ran the stage's previous step,
// on that worker's own task queue (worker/workerQueue.ts), so its layers are at hand; when that
// worker is gone (nobody takes the task soon, or it stops heartbeating) the step goes to the
// shared queue, where any worker takes it. Builds started before it (STICKY_PATCH) replay on
// the shared queue only.
import { ActivityFailure, ApplicationFailure, TimeoutFailure, isCancellation, type ActivityOptions } from '@temporalio/workflow';
import type { RoutedResult } from './types.js';

/** The `patched()` marker of builds that route a stage's steps to one worker. */
export const STICKY_PATCH = 'sticky-queues';

/**
 * How long a step waits on a worker's own queue before it goes to the shared one. A live
 * worker polls its queue all the time (it takes a task within milliseconds), or is busy with
 * as many tasks as it runs at once: then another worker may as well take this one.
 */
export const STICKY_START_TIMEOUT = '5 seconds';

/** A stage's route: the own queue of the worker that ran its last step, when known. */
export interface Route {
  queue?: string;
}

/**
 * Runs an activity (`call` with the options to schedule it with) on the route's worker, else
 * on the shared queue; the route then names the worker that ran it. Without a route (builds
 * started before STICKY_PATCH), just `call(options)`.
 */
export async function routed<T extends RoutedResult>(route: Route | undefined, options: ActivityOptions, call: (options: ActivityOptions) => Promise<T>): Promise<T> {
  if (!route) return call(options);
  let result: T | undefined;
  if (route.queue) {
    try {
      // Retries would stay on this queue, with a worker that may be dead: one attempt here,
      // the rest on the shared queue.
      result = await call({ ...options, taskQueue: route.queue, scheduleToStartTimeout: STICKY_START_TIMEOUT, retry: { ...options.retry, maximumAttempts: 1 } });
    } catch (err) {
      if (!movesOn(err)) throw err;
      route.queue = undefined;
    }
  }
  result ??= await call(options);
  const q = result.workerQueue;
  route.queue = typeof q === 'string' && q.length > 0 && q.length <= 200 ? q : undefined;
  return result;
}

/** Whether a failed attempt on a worker's own queue is tried on the shared one: a lost worker, or a failure worth retrying. */
function movesOn(err: unknown): boolean {
  if (isCancellation(err) || !(err instanceof ActivityFailure)) return false;
  const cause = err.cause;
  if (cause instanceof TimeoutFailure) return true;
  return cause instanceof ApplicationFailure && !cause.nonRetryable;
}
