// The task queue builds go to and workers poll: STRATA_TASK_QUEUE, else "strata".
export const DEFAULT_TASK_QUEUE = 'strata';

export function taskQueue(): string {
  return process.env.STRATA_TASK_QUEUE || DEFAULT_TASK_QUEUE;
}
