// Before the stages run: the images the plan found missing from the store (FROM, COPY --from,
// RUN --mount from=) get their layers, all at once. Layer bytes never pass through Temporal:
// the activity writes the store and returns a count.
import { proxyActivities } from '@temporalio/workflow';
import { LONG, QUICK } from './activityOptions.js';
import type { BuildPlan } from '../engine/plan/types.js';
import type { PullActivities } from './types.js';

// Heartbeats carry the download's progress; a 4xx fails at once, 5xx and cut connections are retried.
const pulling = proxyActivities<PullActivities>({ ...LONG, retry: QUICK.retry });

/**
 * Pulls what the planning worker's store lacked (idempotent: an image another worker stored
 * meanwhile costs one quick activity). Nothing to pull schedules nothing, so a build from
 * local images, and every history recorded before pulls existed, has no pull command.
 */
export async function pullMissing(plan: BuildPlan): Promise<void> {
  await Promise.all((plan.pull ?? []).map((input) => pulling.pullImage(input)));
}
