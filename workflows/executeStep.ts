// Running one step of a build, shared by buildImage's two ways of running a stage (with and
// without the instruction cache): the step's activity, its progress, and its retries.
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  isCancellation,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { Digest } from '../engine/digest.js';
import type { ImageState } from '../engine/image/types.js';
import type { ConfigStep, Step } from '../engine/plan/types.js';
import { LONG, QUICK, STEP } from './activityOptions.js';
import { routed, type Route } from './sticky.js';
import type { BuildActivities, BuildProgress, BuildRequest, CopyInput, LayerResult, RunInput, StepChange, StepImage, StepProgress } from './types.js';

/**
 * Activities with a summary: the Web UI shows it in the timeline and event history instead
 * of the activity type alone (the Dockerfile step, `FROM busybox`, `push app:1`). A summary
 * is metadata on the command, not part of it: histories recorded without one still replay.
 */
export function proxy<A>(options: ActivityOptions, summary: string): A {
  return proxyActivities<A & Record<string, never>>({ ...options, summary: oneLine(summary) }) as unknown as A;
}

/** A summary is one line of at most 200 characters (Temporal's limit is 400 bytes). */
export function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 200 ? `${line.slice(0, 199)}…` : line;
}

/** Quick activities (planning, a base, a commit) with their summary. */
export const quick = (summary: string) => proxy<BuildActivities>(QUICK, summary);
/** Activities that heartbeat: copying, the cache look-up (it may hash a large context once). */
export const long = (summary: string) => proxy<BuildActivities>(LONG, summary);

/**
 * The image after a step is written by a local activity: it runs in the worker that runs the
 * workflow task, within that task, so it costs no round trip through the server, only its
 * writes (a config and a manifest blob per step and one index.json update per call: measured
 * in docs/status.md). A run of config steps (ENV, LABEL …) on the plain path, and a run of
 * cache hits (with the config steps among them), is written in one call; on the cached path a
 * step that runs, config steps after a miss included, writes its own. Writing the image in the step's own activity would not serve config steps (no
 * activity) nor cache hits, whose IDs must print as they happen; hashing the config in
 * workflow code would need the image format twice (here and in engine/) and the blobs written
 * somewhere anyway.
 */
const stepImages = (summary: string) =>
  proxyLocalActivities<Pick<BuildActivities, 'writeStepImages'>>({ startToCloseTimeout: '1 minute', retry: QUICK.retry, summary: oneLine(summary) });

/** A stage's end: its state, and (step images) the image its last step wrote. */
export interface StageResult {
  state: ImageState;
  image?: StepImage;
}

/**
 * The images after `steps` (one per entry, each on the one before), on the stage's image so
 * far (`image`), or on nothing of `state`'s platform; `pending` changes (FROM's PATH) go into
 * the first.
 */
export function writeImages(
  env: StageEnv,
  at: { image?: StepImage; state: ImageState },
  pending: StepChange[],
  steps: StepChange[][],
  numbers: number[],
  cached?: boolean[],
): Promise<StepImage[]> {
  return stepImages(`image after step ${numbers.join(', ')}`).writeStepImages({
    parent: at.image ? { manifestDigest: at.image.manifestDigest } : { platform: { architecture: at.state.architecture, os: at.state.os } },
    steps: [[...pending, ...steps[0]!], ...steps.slice(1)],
    ...(cached?.some(Boolean) ? { cached } : {}),
    sourceDateEpoch: env.req.sourceDateEpoch,
  });
}

/** What a step that ran (or hit the cache) with result `r` adds to the image after it. */
export function changeOf(step: Step, r: LayerResult): StepChange {
  return { ...(step.kind === 'workdir' ? { config: step.patch } : {}), history: r.history, ...(r.layer ? { layer: r.layer } : {}) };
}

/**
 * What the Web UI shows as the build's current details: the running steps, or the failed
 * step a build waits with (StrataStatus=waiting says it to `builds ls`; the UI's list shows
 * Running). Metadata answered by a query, not a command: replay is not concerned.
 */
export function showDetails(p: BuildProgress): void {
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

/** Asked when a step failed: true to run it again (a `retry` came within the window). */
export type ShouldRetry = () => Promise<boolean>;

/** What every stage of one build shares while it runs. */
export interface StageEnv {
  req: BuildRequest;
  progress: BuildProgress;
  /** Each stage's final state (and image), as soon as it is known. */
  results: Map<number, Promise<StageResult>>;
  shouldRetry: ShouldRetry;
  /** Write an image after every step (STEP_IMAGES_PATCH). */
  withImages: boolean;
  /** Route each stage's steps to one worker (STICKY_PATCH). */
  sticky: boolean;
}

/**
 * Runs one step (a config step is applied here), marking its progress; a failure waits for a
 * retry (`shouldRetry`) and runs it again, or fails the build naming the step.
 */
export async function attemptStep<T>(env: StageEnv, p: StepProgress, step: Step, run: () => Promise<T>): Promise<T> {
  for (;;) {
    p.status = 'running';
    p.error = undefined;
    p.startedAt = new Date().toISOString();
    p.endedAt = undefined;
    p.runs = (p.runs ?? 0) + 1;
    showDetails(env.progress);
    try {
      const result = await run();
      p.status = 'done';
      p.endedAt ??= new Date().toISOString();
      return result;
    } catch (err) {
      // The step's inputs are recorded, and finished steps are in history and the store: a
      // retry runs this step again (with the build's context, which the retry may replace).
      await stepFailed(env, p, step, err);
    }
  }
}

/**
 * Records `err` as the step's failure; returns once a retry is asked for (the caller runs the
 * step again), else fails the build naming the step.
 */
export async function stepFailed(env: StageEnv, p: StepProgress, step: Step, err: unknown): Promise<void> {
  if (isCancellation(err)) throw err;
  p.status = 'failed';
  p.error = failureMessage(err);
  p.endedAt = new Date().toISOString();
  if (await env.shouldRetry()) return;
  throw ApplicationFailure.nonRetryable(`Step ${step.number}/${env.progress.totalSteps} : ${step.text}${step.line ? ` (line ${step.line})` : ''}: ${p.error}`, 'StepFailed');
}

/**
 * Runs one step's activity (none for a config step) on `state`; returns the new state and the
 * step's layer result. With `cacheKey` the activity records its result under it; with `route`,
 * it runs on the stage's worker while it lives (workflows/sticky.ts).
 */
export async function executeStep(env: StageEnv, step: Step, state: ImageState, cacheKey?: Digest, route?: Route): Promise<{ state: ImageState; result?: LayerResult }> {
  const { req, results } = env;
  const parentTop = state.layers[state.layers.length - 1]?.chainId;
  const sourceDateEpoch = req.sourceDateEpoch;
  const keyed = cacheKey ? { cacheKey } : {};
  let r: LayerResult | undefined;
  switch (step.kind) {
    case 'config':
      return { state: applyConfig(state, step) };
    case 'copy': {
      // --from waits for that stage only (stages run concurrently), or loads the pinned image.
      let from: CopyInput['from'];
      if (step.from?.kind === 'stage') from = { top: topOf((await results.get(step.from.stage)!).state) };
      else if (step.from?.kind === 'image') from = { top: topOf(await quick(`${step.text} (source image)`).resolveBase(step.from)) };
      const input: CopyInput = {
        parentTop,
        step,
        contextDigest: req.contextDigest,
        from,
        sourceDateEpoch,
        network: req.network ?? 'default',
        entitlements: req.entitlements,
        ...keyed,
      };
      r = await routed(route, route ? STEP : LONG, (o) => proxy<BuildActivities>(o, step.text).copyStep(input));
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
      const options = {
        ...RUN_OPTIONS,
        // The activity enforces --step-timeout itself (a clear error); this only bounds a hang.
        startToCloseTimeout: (req.stepTimeoutMs ?? DEFAULT_RUN_TIMEOUT_MS) + 5 * 60_000,
      };
      const input: RunInput = {
        parentTop,
        step,
        network: req.network ?? 'default',
        entitlements: req.entitlements,
        sourceDateEpoch,
        stepTimeoutMs: req.stepTimeoutMs,
        contextDigest: req.contextDigest,
        stageTops,
        ...keyed,
      };
      r = await routed(route, options, (o) => proxy<BuildActivities>(o, step.text).runStep(input));
      break;
    }
    case 'workdir':
      state = { ...state, config: { ...state.config, ...step.patch } };
      r = await routed(route, route ? STEP : LONG, (o) => proxy<BuildActivities>(o, step.text).workdirStep({ parentTop, step, sourceDateEpoch, ...keyed }));
      break;
    case 'from':
      return { state };
  }
  return { state: withResult(state, r), result: r };
}

/** The state after a step that gave `r` (its layer, when it made one, and its history row). */
export function withResult(state: ImageState, r: LayerResult): ImageState {
  return { ...state, layers: r.layer ? [...state.layers, r.layer] : state.layers, history: [...state.history, r.history] };
}

/** chainID of a state's top layer; undefined when it has none (scratch). */
export function topOf(state: ImageState): ImageState['layers'][number]['chainId'] | undefined {
  return state.layers[state.layers.length - 1]?.chainId;
}

export function applyConfig(state: ImageState, step: ConfigStep): ImageState {
  return { ...state, config: { ...state.config, ...step.patch }, history: [...state.history, step.history] };
}

export function shortId(d: string): string {
  return d.slice('sha256:'.length, 'sha256:'.length + 12);
}

/** The innermost message: an activity failure wraps the engine's error as its cause. */
export function failureMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
