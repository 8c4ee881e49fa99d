// buildImage: one Dockerfile build as a durable workflow. Planning and every filesystem step
// run as activities; config-only steps are applied here, from the recorded plan.
import { ActivityFailure, ApplicationFailure, defineQuery, isCancellation, patched, proxyActivities, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { LONG, QUICK } from './activityOptions.js';
import { checkBuildRequest } from './checkRequest.js';
import type { ImageState } from '../engine/image/types.js';
import type { BuildPlan, StagePlan } from '../engine/plan/types.js';
import { CACHE_PATCH, CachedStages } from './cachedStages.js';
import { attemptStep, executeStep, failureMessage, quick, shortId, type StageEnv } from './executeStep.js';
import { pullMissing } from './pullImages.js';
import { RetryGate } from './retry.js';
import { CONTEXT_ATTRIBUTE, STATUS_ATTRIBUTE, TAGS_ATTRIBUTE } from './searchAttributes.js';
import type { BuildActivities, BuildProgress, BuildRequest, BuildResult, BuildStatus, PushActivities, StepProgress } from './types.js';

export const progressQuery = defineQuery<BuildProgress>('progress');

const steps = proxyActivities<BuildActivities>(LONG);
// A push heartbeats with its progress; an unreachable registry or a 5xx is retried, a 4xx is not.
const pushing = proxyActivities<PushActivities>({ ...LONG, retry: QUICK.retry });
export async function buildImage(request: BuildRequest): Promise<BuildResult> {
  checkBuildRequest(request);
  // Builds started before the instruction cache came replay without it (their history has no
  // look-ups); every build started since uses it.
  const cached = patched(CACHE_PATCH);
  // A copy: a retry may name a new context for the steps that follow.
  const req = { ...request };
  const progress: BuildProgress = { phase: 'planning', totalSteps: 0, steps: [], warnings: [] };
  setHandler(progressQuery, () => progress);
  const setStatus = (status: BuildStatus) => upsertSearchAttributes([{ key: STATUS_ATTRIBUTE, value: status }]);
  const gate = new RetryGate(req.retryWindowMs ?? 0, progress, (digest) => {
    req.contextDigest = digest;
    upsertSearchAttributes([{ key: CONTEXT_ATTRIBUTE, value: digest }]);
  });
  upsertSearchAttributes([
    { key: STATUS_ATTRIBUTE, value: 'running' },
    { key: CONTEXT_ATTRIBUTE, value: req.contextDigest },
    ...(req.tags.length > 0 ? [{ key: TAGS_ATTRIBUTE, value: req.tags }] : []),
  ]);
  const onWaitChange = (waiting: boolean) => {
    progress.phase = waiting ? 'waiting' : 'building';
    setStatus(waiting ? 'waiting' : 'running');
  };

  try {
    const plan = await quick.planBuild({
      dockerfileDigest: req.dockerfileDigest,
      dockerfileName: req.dockerfileName,
      buildArgs: req.buildArgs,
      target: req.target,
      ...(req.pull ? { pull: true } : {}),
    });
    progress.totalSteps = plan.totalSteps;
    progress.warnings = plan.warnings;
    if (plan.pull?.length) {
      progress.phase = 'pulling';
      await pullMissing(plan);
    }
    progress.phase = 'building';
    const final = await runStages(plan, { req, progress, results: new Map(), shouldRetry: () => gate.shouldRetry(onWaitChange) }, cached);

    progress.phase = 'committing';
    const image = await quick.commitImage({ state: final, tags: req.tags, sourceDateEpoch: req.sourceDateEpoch });

    progress.phase = 'saving';
    const outputs: string[] = [];
    for (const out of req.outputs) {
      const saved = await steps.saveImage({ manifestDigest: image.manifestDigest, tags: req.tags, dest: out.dest });
      outputs.push(saved.dest);
    }
    const pushed = [];
    if (req.push) {
      progress.phase = 'pushing';
      for (const reference of req.tags) pushed.push(await pushing.pushImage({ manifestDigest: image.manifestDigest, reference }));
    }
    progress.phase = 'done';
    setStatus('succeeded');
    return {
      imageId: image.imageId,
      manifestDigest: image.manifestDigest,
      tags: req.tags,
      outputs,
      warnings: plan.warnings,
      ...(req.push ? { pushed } : {}),
    };
  } catch (err) {
    progress.phase = 'failed';
    setStatus(isCancellation(err) ? 'cancelled' : 'failed');
    if (isCancellation(err)) throw err; // the build ends as cancelled, not failed
    throw toBuildFailure(err);
  }
}

/**
 * Runs the planned stages, each as soon as the stages it needs are done. With the instruction
 * cache (builds started since it came: `patched`), each stage looks its steps up first.
 */
async function runStages(plan: BuildPlan, env: StageEnv, cached: boolean): Promise<ImageState> {
  const { results, progress } = env;
  for (const stage of plan.stages) {
    for (const step of stage.steps) progress.steps.push({ number: step.number, text: step.text, line: step.line, status: 'pending' });
  }
  const stages = cached ? new CachedStages(env) : undefined;
  for (const stage of plan.stages) {
    results.set(stage.index, stages ? stages.start(stage) : runStage(stage, env));
  }
  // Wait for all, so a failing stage is reported even when the target finished first.
  const settled = await Promise.allSettled(results.values());
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.get(plan.target)!;
}

/** A stage the way builds ran before the instruction cache: every step runs. */
async function runStage(stage: StagePlan, env: StageEnv): Promise<ImageState> {
  const { results, progress } = env;
  const track = (n: number): StepProgress => progress.steps.find((s) => s.number === n)!;
  let state: ImageState;
  const [fromStep, ...rest] = stage.steps;
  const from = track(fromStep!.number);
  from.status = 'running';
  if (stage.base.kind === 'stage') {
    state = await results.get(stage.base.stage)!;
  } else {
    state = await quick.resolveBase(stage.base);
  }
  if (fromStep!.kind === 'from' && fromStep!.patch) state = { ...state, config: { ...state.config, ...fromStep!.patch } };
  from.status = 'done';
  from.layer = state.layers.length > 0 ? shortId(state.layers[state.layers.length - 1]!.chainId) : undefined;

  for (const step of rest) {
    const current = state;
    state = (await attemptStep(env, track(step.number), step, () => executeStep(env, step, current))).state;
  }
  return state;
}

function toBuildFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof ActivityFailure) {
    const cause = err.cause;
    if (cause instanceof ApplicationFailure) return ApplicationFailure.nonRetryable(cause.message, cause.type ?? 'BuildFailed');
    return ApplicationFailure.nonRetryable(failureMessage(err), 'BuildFailed');
  }
  return err;
}
