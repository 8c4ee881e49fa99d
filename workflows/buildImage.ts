// buildImage: one Dockerfile build as a durable workflow. Planning and every filesystem step
// run as activities; config-only steps are applied here, from the recorded plan.
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  defineQuery,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import { LONG, QUICK } from './activityOptions.js';
import { checkBuildRequest } from './checkRequest.js';
import type { ImageState } from '../engine/image/types.js';
import type { BuildPlan, ConfigStep, StagePlan } from '../engine/plan/types.js';
import { pullMissing } from './pullImages.js';
import { RetryGate } from './retry.js';
import { CONTEXT_ATTRIBUTE, STATUS_ATTRIBUTE, TAGS_ATTRIBUTE } from './searchAttributes.js';
import type { BuildActivities, BuildProgress, BuildRequest, BuildResult, BuildStatus, CopyInput, LayerResult, PushActivities, RunInput, StepProgress } from './types.js';

export const progressQuery = defineQuery<BuildProgress>('progress');

const quick = proxyActivities<BuildActivities>(QUICK);
const steps = proxyActivities<BuildActivities>(LONG);
// A push heartbeats with its progress; an unreachable registry or a 5xx is retried, a 4xx is not.
const pushing = proxyActivities<PushActivities>({ ...LONG, retry: QUICK.retry });
// RUN heartbeats every second; a lost worker is noticed within the heartbeat timeout, and a
// cancelled build waits until the container is killed and its mount gone. 15 beats may be
// missed before the step is retried elsewhere: only an event loop stalled that long (never
// seen: commits stream) would be taken for dead, and then the step is just run again.
const RUN_OPTIONS = {
  heartbeatTimeout: '15 seconds',
  retry: LONG.retry,
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
} as const;
const DEFAULT_RUN_TIMEOUT_MS = 24 * 3600_000;

export async function buildImage(request: BuildRequest): Promise<BuildResult> {
  checkBuildRequest(request);
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
    const final = await runStages(plan, req, progress, () => gate.shouldRetry(onWaitChange));

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

/** Runs the planned stages, each as soon as the stages it needs are done. */
/** Asked when a step failed: true to run it again (a `retry` came within the window). */
type ShouldRetry = () => Promise<boolean>;

async function runStages(plan: BuildPlan, req: BuildRequest, progress: BuildProgress, shouldRetry: ShouldRetry): Promise<ImageState> {
  const results = new Map<number, Promise<ImageState>>();
  for (const stage of plan.stages) {
    for (const step of stage.steps) progress.steps.push({ number: step.number, text: step.text, line: step.line, status: 'pending' });
  }
  for (const stage of plan.stages) {
    results.set(stage.index, runStage(stage, results, req, progress, shouldRetry));
  }
  // Wait for all, so a failing stage is reported even when the target finished first.
  const settled = await Promise.allSettled(results.values());
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.get(plan.target)!;
}

async function runStage(stage: StagePlan, results: Map<number, Promise<ImageState>>, req: BuildRequest, progress: BuildProgress, shouldRetry: ShouldRetry): Promise<ImageState> {
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

  const run = proxyActivities<BuildActivities>({
    ...RUN_OPTIONS,
    // The activity enforces --step-timeout itself (a clear error); this only bounds a hang.
    startToCloseTimeout: (req.stepTimeoutMs ?? DEFAULT_RUN_TIMEOUT_MS) + 5 * 60_000,
  });
  for (let i = 0; i < rest.length; i++) {
    const step = rest[i]!;
    const p = track(step.number);
    p.status = 'running';
    p.error = undefined;
    p.startedAt = new Date().toISOString();
    p.endedAt = undefined;
    p.runs = (p.runs ?? 0) + 1;
    const parentTop = state.layers[state.layers.length - 1]?.chainId;
    const sourceDateEpoch = req.sourceDateEpoch;
    try {
      let r: LayerResult | undefined;
      switch (step.kind) {
        case 'config':
          state = applyConfig(state, step);
          break;
        case 'copy': {
          // --from waits for that stage only (stages run concurrently), or loads the pinned image.
          let from: CopyInput['from'];
          if (step.from?.kind === 'stage') from = { top: topOf(await results.get(step.from.stage)!) };
          else if (step.from?.kind === 'image') from = { top: topOf(await quick.resolveBase(step.from)) };
          r = await steps.copyStep({ parentTop, step, contextDigest: req.contextDigest, from, sourceDateEpoch, network: req.network ?? 'default', entitlements: req.entitlements });
          break;
        }
        case 'run': {
          // A mount from another stage waits for that stage and reads its top layer.
          const stageTops: NonNullable<RunInput['stageTops']> = [];
          for (const m of step.mounts ?? []) {
            const from = m.type === 'bind' || m.type === 'cache' ? m.from : undefined;
            if (from?.kind !== 'stage' || stageTops.some((t) => t.stage === from.stage)) continue;
            const done = await results.get(from.stage)!;
            stageTops.push({ stage: from.stage, top: done.layers[done.layers.length - 1]?.chainId });
          }
          r = await run.runStep({
            parentTop,
            step,
            network: req.network ?? 'default',
            entitlements: req.entitlements,
            sourceDateEpoch,
            stepTimeoutMs: req.stepTimeoutMs,
            contextDigest: req.contextDigest,
            stageTops,
          });
          break;
        }
        case 'workdir':
          state = { ...state, config: { ...state.config, ...step.patch } };
          r = await steps.workdirStep({ parentTop, step, sourceDateEpoch });
          break;
        case 'from':
          break;
      }
      if (r) {
        state = { ...state, layers: r.layer ? [...state.layers, r.layer] : state.layers, history: [...state.history, r.history] };
        if (r.layer) p.layer = shortId(r.layer.chainId);
      }
      p.status = 'done';
      p.endedAt = new Date().toISOString();
    } catch (err) {
      if (isCancellation(err)) throw err;
      p.status = 'failed';
      p.error = failureMessage(err);
      p.endedAt = new Date().toISOString();
      // The step's inputs are recorded, and finished steps are in history and the store: a
      // retry runs this step again (with the build's context, which the retry may replace).
      if (await shouldRetry()) {
        i--;
        continue;
      }
      throw ApplicationFailure.nonRetryable(`Step ${step.number}/${progress.totalSteps} : ${step.text} (line ${step.line}): ${p.error}`, 'StepFailed');
    }
  }
  return state;
}

/** chainID of a state's top layer; undefined when it has none (scratch). */
function topOf(state: ImageState): ImageState['layers'][number]['chainId'] | undefined {
  return state.layers[state.layers.length - 1]?.chainId;
}

function applyConfig(state: ImageState, step: ConfigStep): ImageState {
  return { ...state, config: { ...state.config, ...step.patch }, history: [...state.history, step.history] };
}

function shortId(d: string): string {
  return d.slice('sha256:'.length, 'sha256:'.length + 12);
}

/** The innermost message: an activity failure wraps the engine's error as its cause. */
function failureMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  if (err instanceof Error) return err.message;
  return String(err);
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
