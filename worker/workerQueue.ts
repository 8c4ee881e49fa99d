// Each worker also polls a task queue of its own, so a build can send the next step of a stage
// to the worker that holds the stage's layers (workflows/sticky.ts); step activities say in
// their result which queue that is.
import { randomBytes } from 'node:crypto';

/** The activities whose result names the worker's own queue: the steps of a stage. */
export const ROUTED_ACTIVITIES = ['lookupCache', 'copyStep', 'runStep', 'workdirStep'] as const;

/** A worker's own queue: the shared one's name, a dash, and a random ID (one per worker process). */
export function ownQueue(shared: string): string {
  return `${shared}-${randomBytes(6).toString('hex')}`;
}

/** `activities` with the step activities' results carrying `workerQueue: queue`. */
export function withWorkerQueue<T extends object>(activities: T, queue: string): T {
  const out: Record<string, unknown> = { ...(activities as Record<string, unknown>) };
  for (const name of ROUTED_ACTIVITIES) {
    const fn = out[name] as ((input: unknown) => Promise<unknown>) | undefined;
    if (!fn) continue;
    out[name] = async (input: unknown) => {
      const r = await fn(input);
      return r !== null && typeof r === 'object' ? { ...r, workerQueue: queue } : r;
    };
  }
  return out as T;
}
