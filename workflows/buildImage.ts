// buildImage: one Dockerfile build as a durable workflow. Planning and every filesystem step
// run as activities; config-only steps are applied here, from the recorded plan.
import { ActivityFailure, ApplicationFailure, defineQuery, isCancellation, patched, setCurrentDetails, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { LONG, QUICK } from './activityOptions.js';
import { checkBuildRequest } from './checkRequest.js';
import type { ImageState } from '../engine/image/types.js';
import type { BuildPlan, ConfigStep, StagePlan } from '../engine/plan/types.js';
import { CACHE_PATCH, CachedStages } from './cachedStages.js';
import {
  applyConfig,
  attemptStep,
  changeOf,
  executeStep,
  failureMessage,
  oneLine,
  proxy,
  quick,
  shortId,
  showDetails,
  writeImages,
  type StageEnv,
  type StageResult,
} from './executeStep.js';
import { pullMissing } from './pullImages.js';
import { RetryGate } from './retry.js';
import { STICKY_PATCH } from './sticky.js';
import { CONTEXT_ATTRIBUTE, STATUS_ATTRIBUTE, STORE_ATTRIBUTE, TAGS_ATTRIBUTE } from './searchAttributes.js';
import type { BuildActivities, BuildProgress, BuildRequest, BuildResult, BuildStatus, LayerResult, PushActivities, StepChange, StepImage } from './types.js';

export const progressQuery = defineQuery<BuildProgress>('progress');

/**
 * Builds started with this patch write an image after every step (docker's intermediate
 * images: ` ---> ID` is an image `strata save` and `COPY --from` take) and end with the last
 * step's image; builds recorded before it show layer IDs and commit a new image at the end.
 */
export const STEP_IMAGES_PATCH = 'strata-step-images';

// A push heartbeats with its progress; an unreachable registry or a 5xx is retried, a 4xx is not.
const PUSH_OPTIONS = { ...LONG, retry: QUICK.retry };

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
    // Only a store ID as strata makes them: the input is anyone's.
    ...(typeof req.storeId === 'string' && /^[0-9a-f]{16,64}$/.test(req.storeId) ? [{ key: STORE_ATTRIBUTE, value: req.storeId }] : []),
  ]);
  const withImages = patched(STEP_IMAGES_PATCH);
  // Builds started since sticky routing send a stage's steps to one worker while it lives.
  const sticky = patched(STICKY_PATCH);
  const onWaitChange = (waiting: boolean) => {
    progress.phase = waiting ? 'waiting' : 'building';
    setStatus(waiting ? 'waiting' : 'running');
    showDetails(progress);
  };

  try {
    const plan = await quick(`plan ${req.dockerfileName}`).planBuild({
      dockerfileDigest: req.dockerfileDigest,
      dockerfileName: req.dockerfileName,
      buildArgs: req.buildArgs,
      target: req.target,
      ...(req.labels && Object.keys(req.labels).length > 0 ? { labels: req.labels } : {}),
      ...(req.pull ? { pull: true } : {}),
    });
    progress.totalSteps = plan.totalSteps;
    progress.warnings = plan.warnings;
    if (plan.pull?.length) {
      progress.phase = 'pulling';
      await pullMissing(plan);
    }
    progress.phase = 'building';
    const waitSummary = () => {
      const failed = progress.steps.filter((s) => s.status === 'failed').map((s) => `step ${s.number} of ${progress.totalSteps} (${s.text})`);
      return oneLine(`waiting for strata retry or abort: ${failed.join(', ')} failed`);
    };
    const env: StageEnv = { req, progress, results: new Map(), shouldRetry: () => gate.shouldRetry(onWaitChange, waitSummary()), withImages, sticky };
    const final = await runStages(plan, env, cached);

    progress.phase = 'committing';
    showDetails(progress);
    const named = req.tags.length > 0 ? req.tags.join(', ') : 'untagged';
    const image = await quick(`commit ${named}`).commitImage({
      state: final.state,
      tags: req.tags,
      sourceDateEpoch: req.sourceDateEpoch,
      ...(final.image ? { image: final.image.manifestDigest } : {}),
    });

    progress.phase = 'saving';
    const outputs: string[] = [];
    for (const out of req.outputs) {
      const saved = await proxy<BuildActivities>(LONG, `save to ${out.dest}`).saveImage({ manifestDigest: image.manifestDigest, tags: req.tags, dest: out.dest });
      outputs.push(saved.dest);
    }
    const pushed = [];
    if (req.push) {
      progress.phase = 'pushing';
      showDetails(progress);
      for (const reference of req.tags) pushed.push(await proxy<PushActivities>(PUSH_OPTIONS, `push ${reference}`).pushImage({ manifestDigest: image.manifestDigest, reference }));
    }
    progress.phase = 'done';
    setCurrentDetails(`Built **${image.imageId}**${req.tags.length > 0 ? ` as ${req.tags.map((t) => `\`${t}\``).join(', ')}` : ''}`);
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
    setCurrentDetails(isCancellation(err) ? 'Cancelled' : `Failed: ${failureMessage(err)}`);
    setStatus(isCancellation(err) ? 'cancelled' : 'failed');
    if (isCancellation(err)) throw err; // the build ends as cancelled, not failed
    throw toBuildFailure(err);
  }
}

/**
 * Runs the planned stages, each as soon as the stages it needs are done. With the instruction
 * cache (builds started since it came: `patched`), each stage looks its steps up first.
 */
async function runStages(plan: BuildPlan, env: StageEnv, cached: boolean): Promise<StageResult> {
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
async function runStage(stage: StagePlan, env: StageEnv): Promise<StageResult> {
  const { results, progress, withImages } = env;
  const track = (n: number) => progress.steps.find((s) => s.number === n)!;
  const route = env.sticky ? {} : undefined;
  let state: ImageState;
  // The stage's image so far (step images), and changes not in an image yet (FROM's PATH).
  let image: StepImage | undefined;
  let pending: StepChange[] = [];
  const [fromStep, ...rest] = stage.steps;
  const from = track(fromStep!.number);
  from.status = 'running';
  from.startedAt = new Date().toISOString();
  showDetails(progress);
  if (stage.base.kind === 'stage') {
    ({ state, image } = await results.get(stage.base.stage)!);
  } else {
    state = await quick(fromStep!.text).resolveBase(stage.base);
    if (stage.base.kind === 'image') image = { imageId: stage.base.configDigest, manifestDigest: stage.base.manifestDigest };
  }
  if (fromStep!.kind === 'from' && fromStep!.patch) {
    state = { ...state, config: { ...state.config, ...fromStep!.patch } };
    pending.push({ config: fromStep!.patch });
  }
  // FROM shows its base's ID, as docker does; the default PATH goes into the next step's
  // image, or into one of its own when no step follows.
  if (withImages && pending.length > 0 && rest.length === 0) {
    image = (await writeImages(env, { image, state }, pending, [[]], [fromStep!.number]))[0]!;
    pending = [];
  }
  from.status = 'done';
  from.endedAt = new Date().toISOString();
  from.layer = state.layers.length > 0 ? shortId(state.layers[state.layers.length - 1]!.chainId) : undefined;
  if (withImages && image) from.image = shortId(image.imageId);

  for (let i = 0; i < rest.length;) {
    // A filesystem step, or a run of config steps: those take no activity, and their images
    // are written together.
    const unit = [rest[i]!];
    while (unit[0]!.kind === 'config' && rest[i + unit.length]?.kind === 'config') unit.push(rest[i + unit.length]!);
    const step = unit[0]!;
    const ps = unit.map((u) => track(u.number));
    const at = state;
    // The first step's progress stands for the unit's; the others follow it.
    state = await attemptStep(env, ps[0]!, step, async () => {
      for (const p of ps.slice(1)) Object.assign(p, { status: 'running', error: undefined, startedAt: ps[0]!.startedAt, endedAt: undefined, runs: (p.runs ?? 0) + 1 });
      let next = at;
      const changes: StepChange[] = [];
      let r: LayerResult | undefined;
      if (step.kind === 'config') {
        for (const c of unit as ConfigStep[]) {
          next = applyConfig(next, c);
          changes.push({ config: c.patch, history: c.history });
        }
      } else {
        ({ state: next, result: r } = await executeStep(env, step, at, undefined, route));
        if (r) {
          if (r.layer) ps[0]!.layer = shortId(r.layer.chainId);
          changes.push(changeOf(step, r));
        }
      }
      const endedAt = new Date().toISOString();
      for (const p of ps) p.endedAt = endedAt;
      if (withImages && changes.length > 0) {
        const made = await writeImages(
          env,
          { image, state: at },
          pending,
          changes.map((c) => [c]),
          unit.map((u) => u.number),
        );
        image = made[made.length - 1]!;
        made.forEach((m, k) => (ps[k]!.image = shortId(m.imageId)));
        pending = [];
      }
      for (const p of ps.slice(1)) p.status = 'done';
      return next;
    }).catch((err: unknown) => {
      for (const p of ps.slice(1)) Object.assign(p, { status: 'failed', error: ps[0]!.error, endedAt: ps[0]!.endedAt });
      throw err;
    });
    i += unit.length;
  }
  showDetails(progress);
  return { state, image: withImages ? image : undefined };
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
