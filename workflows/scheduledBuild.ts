// scheduledBuild: what a `strata schedule` starts at each run. It resolves the source to a
// context in the store, skips the run under `--when changed` when nothing the build depends
// on moved since the last successful build, and otherwise runs buildImage as a child.
import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure, executeChild, proxyActivities, workflowInfo } from '@temporalio/workflow';
import { LONG, QUICK } from './activityOptions.js';
import { checkScheduledRequest } from './checkRequest.js';
import type { Digest } from '../engine/digest.js';
import type { BuildPlan } from '../engine/plan/types.js';
import type { buildImage } from './buildImage.js';
import type { ScheduleActivities, ScheduledBuildInputs, ScheduledBuildRequest, ScheduledBuildResult } from './scheduleTypes.js';
import type { BuildActivities } from './types.js';

const quick = proxyActivities<ScheduleActivities & Pick<BuildActivities, 'planBuild'>>(QUICK);
// Packing a large directory or cloning a repository takes a while; it heartbeats.
const fetching = proxyActivities<ScheduleActivities>({ ...LONG, startToCloseTimeout: '1 hour' });

export async function scheduledBuild(req: ScheduledBuildRequest): Promise<ScheduledBuildResult> {
  checkScheduledRequest(req);
  try {
    const source = await fetching.resolveScheduleSource(req.source);
    const plan = await quick.planBuild({
      dockerfileDigest: source.dockerfileDigest,
      dockerfileName: source.dockerfileName,
      buildArgs: req.build.buildArgs,
      target: req.build.target,
    });
    const inputs: ScheduledBuildInputs = {
      contextDigest: source.contextDigest,
      dockerfileDigest: source.dockerfileDigest,
      baseDigests: pinnedImages(plan),
      build: req.build,
    };
    if (req.when === 'changed') {
      const last = await quick.lastScheduledBuild(req.scheduleId);
      if (last && sameInputs(last.inputs, inputs)) {
        return {
          outcome: 'skipped',
          reason: `nothing changed since build ${last.buildId}`,
          imageId: last.imageId,
          lastBuildId: last.buildId,
          contextDigest: source.contextDigest,
          revision: source.revision,
        };
      }
    }
    // A schedule's run IDs end in an RFC 3339 time; build IDs name log directories, so they
    // keep to [\w.-].
    const buildId = `${workflowInfo().workflowId.replace(/[^\w.-]/g, '-')}-build`;
    const tags = req.build.tags.length > 0 ? req.build.tags.join(', ') : 'an untagged image';
    const result = await executeChild<typeof buildImage>('buildImage', {
      workflowId: buildId,
      args: [{ ...req.build, ...source, outputs: [] }],
      // What the Web UI shows of the child (metadata: a history without it still replays).
      staticSummary: `strata build ${tags} (schedule ${req.scheduleId})`,
      memo: { tags: req.build.tags, schedule: req.scheduleId, ...(source.revision ? { revision: source.revision } : {}) },
    });
    await quick.recordScheduledBuild({ scheduleId: req.scheduleId, build: { inputs, imageId: result.imageId, buildId, revision: source.revision } });
    const pushed = result.pushed?.map((p) => ({ reference: p.reference, digest: p.digest }));
    return { outcome: 'built', imageId: result.imageId, buildId, tags: result.tags, contextDigest: source.contextDigest, revision: source.revision, pushed };
  } catch (err) {
    throw runFailure(err);
  }
}

/** Every image the plan pinned, wherever it appears (FROM, COPY --from, RUN --mount from). */
function pinnedImages(plan: BuildPlan): Digest[] {
  const found = new Set<Digest>();
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (o.kind === 'image' && typeof o.manifestDigest === 'string') found.add(o.manifestDigest as Digest);
      Object.values(o).forEach(walk);
    }
  };
  walk(plan.stages);
  return [...found].sort();
}

function sameInputs(a: ScheduledBuildInputs, b: ScheduledBuildInputs): boolean {
  return canonical(a) === canonical(b);
}

/** JSON with sorted keys: the same inputs read back from the store compare equal. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** The run fails with the innermost message: the build's "Step N/M : …" or the source's error. */
function runFailure(err: unknown): unknown {
  if (err instanceof ChildWorkflowFailure || err instanceof ActivityFailure) {
    let cause: unknown = err.cause;
    while ((cause instanceof ChildWorkflowFailure || cause instanceof ActivityFailure) && cause.cause) cause = cause.cause;
    const message = cause instanceof Error ? cause.message : err.message;
    const type = cause instanceof ApplicationFailure ? (cause.type ?? 'ScheduledBuildFailed') : 'ScheduledBuildFailed';
    return ApplicationFailure.nonRetryable(message, type);
  }
  return err;
}
