// buildImage: one Dockerfile build as a durable workflow. Planning and every filesystem step
// run as activities; config-only steps are applied here, from the recorded plan.
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  defineQuery,
  isCancellation,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  type ActivityOptions,
} from '@temporalio/workflow';
import { LONG, QUICK } from './activityOptions.js';
import { checkBuildRequest } from './checkRequest.js';
import type { ImageState } from '../engine/image/types.js';
import type { BuildPlan, ConfigStep, StagePlan } from '../engine/plan/types.js';
import { pullMissing } from './pullImages.js';
import { RetryGate } from './retry.js';
import { CONTEXT_ATTRIBUTE, STATUS_ATTRIBUTE, STORE_ATTRIBUTE, TAGS_ATTRIBUTE } from './searchAttributes.js';
import type {
  BuildActivities,
  BuildProgress,
  BuildRequest,
  BuildResult,
  BuildStatus,
  CopyInput,
  LayerResult,
  PushActivities,
  RunInput,
  StepChange,
  StepImage,
  StepProgress,
} from './types.js';

export const progressQuery = defineQuery<BuildProgress>('progress');

/**
 * Builds started with this patch write an image after every step (docker's intermediate
 * images: ` ---> ID` is an image `strata save` and `COPY --from` take) and end with the last
 * step's image; builds recorded before it show layer IDs and commit a new image at the end.
 */
export const STEP_IMAGES_PATCH = 'strata-step-images';

/**
 * Activities with a summary: the Web UI shows it in the timeline and event history instead
 * of the activity type alone (the Dockerfile step, `FROM busybox`, `push app:1`). A summary
 * is metadata on the command, not part of it: histories recorded without one still replay.
 */
function proxy<A>(options: ActivityOptions, summary: string): A {
  return proxyActivities<A & Record<string, never>>({ ...options, summary: oneLine(summary) }) as unknown as A;
}

/** A summary is one line of at most 200 characters (Temporal's limit is 400 bytes). */
function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 200 ? `${line.slice(0, 199)}…` : line;
}

/**
 * The image after a step is written by a local activity: it runs in the worker that runs the
 * workflow task, within that task, so it costs no round trip through the server, only its
 * writes (a config and a manifest blob per step and one index.json update per call: measured
 * in docs/status.md). A run of config steps (ENV, LABEL …) is written in one call. Writing
 * the image in the step's own activity would not serve config steps (no activity), whose IDs
 * must print as they happen; hashing the config in workflow code would need the image format
 * twice (here and in engine/) and the blobs written somewhere anyway.
 */
const stepImages = (summary: string) =>
  proxyLocalActivities<Pick<BuildActivities, 'writeStepImages'>>({ startToCloseTimeout: '1 minute', retry: QUICK.retry, summary: oneLine(summary) });

// A push heartbeats with its progress; an unreachable registry or a 5xx is retried, a 4xx is not.
const PUSH_OPTIONS: ActivityOptions = { ...LONG, retry: QUICK.retry };
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
    // Only a store ID as strata makes them: the input is anyone's.
    ...(typeof req.storeId === 'string' && /^[0-9a-f]{16,64}$/.test(req.storeId) ? [{ key: STORE_ATTRIBUTE, value: req.storeId }] : []),
  ]);
  const withImages = patched(STEP_IMAGES_PATCH);
  const onWaitChange = (waiting: boolean) => {
    progress.phase = waiting ? 'waiting' : 'building';
    setStatus(waiting ? 'waiting' : 'running');
    showDetails(progress);
  };
  const quick = (summary: string) => proxy<BuildActivities>(QUICK, summary);

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
    const final = await runStages(plan, req, progress, () => gate.shouldRetry(onWaitChange, waitSummary()), withImages);

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
 * What the Web UI shows as the build's current details: the running steps, or the failed
 * step a build waits with (StrataStatus=waiting says it to `builds ls`; the UI's list shows
 * Running). Metadata answered by a query, not a command: replay is not concerned.
 */
function showDetails(p: BuildProgress): void {
  // "N of M": Temporal's markdown shows N/M as a fraction.
  const step = (s: StepProgress) => `step ${s.number} of ${p.totalSteps} \`${oneLine(s.text).replace(/`/g, "'")}\``;
  if (p.phase === 'waiting') {
    const failed = p.steps.filter((s) => s.status === 'failed');
    setCurrentDetails(
      [
        `**Waiting for a retry** until ${p.waitingUntil ?? 'the retry window ends'}: send the signal \`retry\` (strata retry) to run the failed step again, or \`abort\` to fail the build.`,
        ...failed.map((s) => `${step(s)}${s.line ? ` (line ${s.line})` : ''} failed:\n\n\`\`\`\n${(s.error ?? '').replace(/`{3,}/g, "'''")}\n\`\`\``),
      ].join('\n\n'),
    );
  } else if (p.phase === 'building') {
    const running = p.steps.filter((s) => s.status === 'running');
    setCurrentDetails(running.length > 0 ? `Running ${running.map(step).join(', ')}` : 'Building');
  } else {
    setCurrentDetails(p.phase[0]!.toUpperCase() + p.phase.slice(1));
  }
}

/** Asked when a step failed: true to run it again (a `retry` came within the window). */
type ShouldRetry = () => Promise<boolean>;

/** A stage's end: its state, and (step images) the image its last step wrote. */
interface StageResult {
  state: ImageState;
  image?: StepImage;
}

/** Runs the planned stages, each as soon as the stages it needs are done. */
async function runStages(plan: BuildPlan, req: BuildRequest, progress: BuildProgress, shouldRetry: ShouldRetry, withImages: boolean): Promise<StageResult> {
  const results = new Map<number, Promise<StageResult>>();
  for (const stage of plan.stages) {
    for (const step of stage.steps) progress.steps.push({ number: step.number, text: step.text, line: step.line, status: 'pending' });
  }
  for (const stage of plan.stages) {
    results.set(stage.index, runStage(stage, results, req, progress, shouldRetry, withImages));
  }
  // Wait for all, so a failing stage is reported even when the target finished first.
  const settled = await Promise.allSettled(results.values());
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.get(plan.target)!;
}

async function runStage(
  stage: StagePlan,
  results: Map<number, Promise<StageResult>>,
  req: BuildRequest,
  progress: BuildProgress,
  shouldRetry: ShouldRetry,
  withImages: boolean,
): Promise<StageResult> {
  const track = (n: number): StepProgress => progress.steps.find((s) => s.number === n)!;
  const quick = (summary: string) => proxy<BuildActivities>(QUICK, summary);
  let state: ImageState;
  // The stage's image so far (step images), and changes not in an image yet (FROM's PATH).
  let image: StepImage | undefined;
  let pending: StepChange[] = [];
  const writeImages = (steps: StepChange[][], numbers: number[]): Promise<StepImage[]> =>
    stepImages(`image after step ${numbers.join(', ')}`).writeStepImages({
      parent: image ? { manifestDigest: image.manifestDigest } : { platform: { architecture: state.architecture, os: state.os } },
      steps: [[...pending, ...steps[0]!], ...steps.slice(1)],
      sourceDateEpoch: req.sourceDateEpoch,
    });
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
    image = (await writeImages([[]], [fromStep!.number]))[0]!;
    pending = [];
  }
  from.status = 'done';
  from.endedAt = new Date().toISOString();
  from.layer = state.layers.length > 0 ? shortId(state.layers[state.layers.length - 1]!.chainId) : undefined;
  if (withImages && image) from.image = shortId(image.imageId);

  // The activity enforces --step-timeout itself (a clear error); this only bounds a hang.
  const runOptions: ActivityOptions = { ...RUN_OPTIONS, startToCloseTimeout: (req.stepTimeoutMs ?? DEFAULT_RUN_TIMEOUT_MS) + 5 * 60_000 };
  for (let i = 0; i < rest.length;) {
    // A filesystem step, or a run of config steps: those take no activity, and their images
    // are written together.
    const unit = [rest[i]!];
    while (unit[0]!.kind === 'config' && rest[i + unit.length]?.kind === 'config') unit.push(rest[i + unit.length]!);
    const step = unit[0]!;
    const ps = unit.map((u) => track(u.number));
    for (const p of ps) {
      p.status = 'running';
      p.error = undefined;
      p.startedAt = new Date().toISOString();
      p.endedAt = undefined;
      p.runs = (p.runs ?? 0) + 1;
    }
    showDetails(progress);
    const parentTop = state.layers[state.layers.length - 1]?.chainId;
    const sourceDateEpoch = req.sourceDateEpoch;
    try {
      let next = state;
      const changes: StepChange[] = [];
      let r: LayerResult | undefined;
      switch (step.kind) {
        case 'config':
          for (const c of unit as ConfigStep[]) {
            next = applyConfig(next, c);
            changes.push({ config: c.patch, history: c.history });
          }
          break;
        case 'copy': {
          // --from waits for that stage only (stages run concurrently), or loads the pinned image.
          let from: CopyInput['from'];
          if (step.from?.kind === 'stage') from = { top: topOf((await results.get(step.from.stage)!).state) };
          else if (step.from?.kind === 'image') from = { top: topOf(await quick(`${step.text} (source image)`).resolveBase(step.from)) };
          r = await proxy<BuildActivities>(LONG, step.text).copyStep({
            parentTop,
            step,
            contextDigest: req.contextDigest,
            from,
            sourceDateEpoch,
            network: req.network ?? 'default',
            entitlements: req.entitlements,
          });
          break;
        }
        case 'run': {
          // A mount from another stage waits for that stage and reads its top layer.
          const stageTops: NonNullable<RunInput['stageTops']> = [];
          for (const m of step.mounts ?? []) {
            const from = m.type === 'bind' || m.type === 'cache' ? m.from : undefined;
            if (from?.kind !== 'stage' || stageTops.some((t) => t.stage === from.stage)) continue;
            const done = (await results.get(from.stage)!).state;
            stageTops.push({ stage: from.stage, top: done.layers[done.layers.length - 1]?.chainId });
          }
          r = await proxy<BuildActivities>(runOptions, step.text).runStep({
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
          next = { ...next, config: { ...next.config, ...step.patch } };
          r = await proxy<BuildActivities>(LONG, step.text).workdirStep({ parentTop, step, sourceDateEpoch });
          break;
        case 'from':
          break;
      }
      if (r) {
        next = { ...next, layers: r.layer ? [...next.layers, r.layer] : next.layers, history: [...next.history, r.history] };
        if (r.layer) ps[0]!.layer = shortId(r.layer.chainId);
        changes.push({ ...(step.kind === 'workdir' ? { config: step.patch } : {}), history: r.history, ...(r.layer ? { layer: r.layer } : {}) });
      }
      const endedAt = new Date().toISOString();
      for (const p of ps) p.endedAt = endedAt;
      if (withImages && changes.length > 0) {
        const made = await writeImages(
          changes.map((c) => [c]),
          unit.map((u) => u.number),
        );
        image = made[made.length - 1]!;
        made.forEach((m, k) => (ps[k]!.image = shortId(m.imageId)));
        pending = [];
      }
      state = next;
      for (const p of ps) p.status = 'done';
      i += unit.length;
    } catch (err) {
      if (isCancellation(err)) throw err;
      const error = failureMessage(err);
      for (const p of ps) {
        p.status = 'failed';
        p.error = error;
        p.endedAt = new Date().toISOString();
      }
      // The step's inputs are recorded, and finished steps are in history and the store: a
      // retry runs this step again (with the build's context, which the retry may replace).
      if (await shouldRetry()) continue;
      throw ApplicationFailure.nonRetryable(`Step ${step.number}/${progress.totalSteps} : ${step.text}${step.line ? ` (line ${step.line})` : ''}: ${error}`, 'StepFailed');
    }
  }
  showDetails(progress);
  return { state, image: withImages ? image : undefined };
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
