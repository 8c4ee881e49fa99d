// Before the stages run: every image the plan pinned (FROM, COPY --from, RUN --mount from=)
// gets its layers into the store, each once, all at once. Layer bytes never pass through
// Temporal: the activity writes the store and returns a count.
import { proxyActivities } from '@temporalio/workflow';
import { LONG, QUICK } from './activityOptions.js';
import type { BuildPlan } from '../engine/plan/types.js';
import type { PullActivities, PullInput } from './types.js';

// Heartbeats carry the download's progress; a 4xx fails at once, 5xx and cut connections are retried.
const pulling = proxyActivities<PullActivities>({ ...LONG, retry: QUICK.retry });

/** The images a plan pins, each once. */
export function pinnedImages(plan: BuildPlan): PullInput[] {
  const seen = new Map<string, PullInput>();
  const add = (x: { kind: string; ref?: string; manifestDigest?: string } | undefined) => {
    if (x?.kind === 'image' && x.ref && x.manifestDigest && !seen.has(x.manifestDigest)) seen.set(x.manifestDigest, { ref: x.ref, manifestDigest: x.manifestDigest as PullInput['manifestDigest'] });
  };
  for (const stage of plan.stages) {
    add(stage.base);
    for (const step of stage.steps) {
      if (step.kind === 'copy') add(step.from);
      if (step.kind === 'run') for (const m of step.mounts ?? []) if (m.type === 'bind' || m.type === 'cache') add(m.from);
    }
  }
  return [...seen.values()];
}

/** Pulls what the store lacks of each pinned image (idempotent: a stored image costs one quick activity). */
export async function pullPinned(plan: BuildPlan): Promise<void> {
  await Promise.all(pinnedImages(plan).map((input) => pulling.pullImage(input)));
}
