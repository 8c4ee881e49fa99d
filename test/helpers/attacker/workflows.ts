// An attacker's workflow: it runs on the attacker's own worker and schedules one of strata's
// activities, with any input, on strata's task queue, where strata's worker executes it.
import { proxyActivities } from '@temporalio/workflow';

export async function callActivity(taskQueue: string, name: string, input: unknown): Promise<unknown> {
  const activities = proxyActivities<Record<string, (input: unknown) => Promise<unknown>>>({
    taskQueue,
    startToCloseTimeout: '2 minutes',
    retry: { maximumAttempts: 1 },
  });
  return activities[name]!(input);
}
