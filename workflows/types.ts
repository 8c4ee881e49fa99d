// The buildImage workflow's API: its input, result, progress query, and the activity
// contracts it calls. Types only, shared by client, worker and activities.
import type { Digest } from '../engine/digest.js';
import type { HistoryEntry, ImageState, LayerRef } from '../engine/image/types.js';
import type { CacheStart, CachedStep } from '../engine/cache/lookup.js';
import type { BaseSpec, BuildPlan, CopyStep, RunStep, Step, WorkdirStep } from '../engine/plan/types.js';
import type { NetworkMode } from '../engine/runtime/network.js';
import type { PushResult } from '../engine/registry/push.js';
import type { StepChange, StepImage, StepImagesSpec } from '../engine/store/intermediate.js';

export interface OutputSpec {
  /** `docker`: a tar for `docker load` (OCI layout + docker's manifest.json). */
  type: 'docker';
  /**
   * Where the worker writes the tar: inside its STRATA_OUTPUT_DIR (absolute, or relative to
   * it), or nowhere. `strata build` puts outputs here only with --detach; a build it follows
   * it saves itself (client/deliver.ts).
   */
  dest: string;
}

export interface BuildRequest {
  /** The build context: an uncompressed tar in the store. */
  contextDigest: Digest;
  /** The Dockerfile's text, as a blob in the store (it may live outside the context). */
  dockerfileDigest: Digest;
  /** The name errors use, e.g. `Dockerfile`. */
  dockerfileName: string;
  buildArgs: Record<string, string>;
  target?: string;
  tags: string[];
  outputs: OutputSpec[];
  /** SOURCE_DATE_EPOCH: clamps mtimes and sets `created`, for reproducible image IDs. */
  sourceDateEpoch?: number;
  /**
   * RUN's network when the step sets none (`strata build --network`), and whether ADD may
   * download. Default `default`: a namespace of the step's own with egress, not the host's.
   */
  network?: NetworkMode;
  /**
   * Rights the build asks for (`strata build --allow`): `network.host` lets RUN use the
   * host's network and ADD reach the host's loopback. A worker may refuse them
   * (`strata worker --deny-entitlement`).
   */
  entitlements?: string[];
  /** Bound on one RUN step (`--step-timeout`), in milliseconds. */
  stepTimeoutMs?: number;
  /**
   * How long a failed step waits for a `retry` or `abort` signal before the build fails with
   * its error (`--retry-window`), in milliseconds. Absent or 0: the build fails at once.
   */
  retryWindowMs?: number;
  /** Push each tag to its registry after the commit (`--push`); the tags must name registries. */
  push?: boolean;
  /** Use no instruction cache entry (`--no-cache`); the steps still record theirs. */
  noCache?: boolean;
  /** Stages (names, or indexes as `COPY --from` counts them) that use no cache entry (`--no-cache-filter`). */
  noCacheFilter?: string[];
  /** `--label K=V`: labels added to the image after the target stage's last instruction. */
  labels?: Record<string, string>;
  /**
   * The ID of the store the client that started the build uses (`strata builds ls` lists a
   * store's builds by it: search attribute StrataStore). Hex; anything else is ignored.
   */
  storeId?: string;
  /** Resolve every image the Dockerfile names in its registry, even when the store has it (`--pull`). */
  pull?: boolean;
  /**
   * Registry repositories (`REGISTRY/REPO`) whose cache entries this build may use on a local
   * miss (`--cache-from type=registry,ref=…`); they serve this build only.
   */
  cacheFrom?: string[];
}

export interface BuildResult {
  imageId: Digest;
  manifestDigest: Digest;
  tags: string[];
  outputs: string[];
  warnings: string[];
  /** One per tag, when the request asked for a push. */
  pushed?: PushResult[];
}

/** `failed` while the build's phase is `waiting`: the step waits for `retry` or `abort`. */
export type StepStatus = 'pending' | 'running' | 'done' | 'failed';

export interface StepProgress {
  number: number;
  text: string;
  /** The instruction's line in the Dockerfile, for errors. */
  line?: number;
  status: StepStatus;
  /** Short ID of the layer a step made (builds that predate step images show it after `--->`). */
  layer?: string;
  /** Short ID of the image after the step (docker's intermediate image), for ` ---> 0123456789ab`. */
  image?: string;
  error?: string;
  /** Workflow time (ISO 8601) the step last started and ended; a retry sets both anew. */
  startedAt?: string;
  endedAt?: string;
  /** How many times the step ran: 1, plus one per retry. */
  runs?: number;
  /** The step's result came from the instruction cache: nothing ran (` ---> Using cache`). */
  cached?: true;
}

export interface BuildProgress {
  /** `waiting`: a step failed and the build waits for `retry` or `abort` until `waitingUntil`. */
  phase: 'planning' | 'pulling' | 'building' | 'waiting' | 'committing' | 'saving' | 'pushing' | 'done' | 'failed';
  totalSteps: number;
  steps: StepProgress[];
  warnings: string[];
  /** The end of the retry window (workflow time, ISO 8601) while the phase is `waiting`. */
  waitingUntil?: string;
  /** `retry` signals acted on so far: a client that sent one waits for this to grow. */
  retries?: number;
}

/** The `retry` signal's argument, optional so that a bare signal (e.g. from the Web UI) works. */
export interface RetryRequest {
  /** A new build context (an uncompressed tar in the store) for the failed step and the rest. */
  contextDigest?: Digest;
}

/** What the StrataStatus search attribute holds. */
export type BuildStatus = 'running' | 'waiting' | 'succeeded' | 'failed' | 'cancelled';

// ---- activity contracts ----

export interface PlanInput {
  dockerfileDigest: Digest;
  dockerfileName: string;
  buildArgs: Record<string, string>;
  target?: string;
  labels?: Record<string, string>;
  /** Ask the registry for each image even when the store has it (`--pull`). */
  pull?: boolean;
}

export interface CopyInput {
  /** chainID of the parent's top layer (the activity walks the chain in the store). */
  parentTop?: Digest;
  step: CopyStep;
  contextDigest: Digest;
  /** For COPY --from: the source stage's or image's top chainID (absent inside: an empty rootfs). */
  from?: { top?: Digest };
  sourceDateEpoch?: number;
  /** The build's network: ADD downloads nothing under `none`. Absent: `default`. */
  network?: NetworkMode;
  /** The build's entitlements (BuildRequest.entitlements). */
  entitlements?: string[];
  /** The step's instruction cache key (lookupCache gave it): its result is recorded under it. */
  cacheKey?: Digest;
}

export interface RunInput {
  parentTop?: Digest;
  step: RunStep;
  network: NetworkMode;
  /** The build's entitlements (BuildRequest.entitlements). */
  entitlements?: string[];
  sourceDateEpoch?: number;
  stepTimeoutMs?: number;
  /** For `--mount` binds from the context (the default source). */
  contextDigest?: Digest;
  /** Top chainID of each stage a `--mount from=` names (undefined: the stage has no layer). */
  stageTops?: { stage: number; top?: Digest }[];
  /** The step's instruction cache key (lookupCache gave it): its result is recorded under it. */
  cacheKey?: Digest;
}

export interface WorkdirInput {
  parentTop?: Digest;
  step: WorkdirStep;
  sourceDateEpoch?: number;
  /** The step's instruction cache key (lookupCache gave it): its result is recorded under it. */
  cacheKey?: Digest;
}

/** Keys a run of a stage's steps and finds the cache entries that serve them (engine/cache/lookup.ts). */
export interface CacheLookupInput {
  start: CacheStart;
  /** chainID of the state's top layer before the first step (unused for a `base` start). */
  parentTop?: Digest;
  /** Consecutive steps of one stage, the first one the start leads to. */
  steps: Step[];
  contextDigest: Digest;
  /** Top chainID of every stage the steps read (COPY --from, RUN --mount from=). */
  stageTops?: { stage: number; top?: Digest }[];
  sourceDateEpoch?: number;
  /** The build's network (BuildRequest.network), for RUN steps that set none. */
  network?: NetworkMode;
  /** False: keys only, no entry is used (--no-cache, or a step before missed). */
  useCache: boolean;
  /** BuildRequest.cacheFrom: repositories asked after this store (and STRATA_REMOTE) miss. */
  cacheFrom?: string[];
}

/** What a step activity's result says of the worker that ran it (workflows/sticky.ts). */
export interface RoutedResult {
  /** That worker's own task queue. */
  workerQueue?: string;
}

export interface CacheLookupResult extends RoutedResult {
  /** The base's state, for a `base` start. */
  base?: ImageState;
  /**
   * One per step from the first, in order; shorter than `steps` when the next step can only be
   * keyed on its result (it runs, then a look-up starts from that result). `hit` is set on the
   * filesystem steps up to the first miss.
   */
  steps: { key: Digest; hit?: CachedStep }[];
}

/** A step's layer (absent when the step changed nothing) and its history entry. */
export interface LayerResult extends RoutedResult {
  layer?: LayerRef;
  history: HistoryEntry;
}

/** What a running RUN step heartbeats: the newest output, for clients to stream. */
/**
 * How often a RUN step heartbeats: often, since beats carry its output to clients (which need
 * not look more often) and its cancellation to the worker.
 */
export const RUN_HEARTBEAT_MS = 1_000;

export interface RunHeartbeat {
  step: number;
  /** Byte offset of `text` in the step's whole output. */
  offset: number;
  text: string;
}

export interface CommitInput {
  state: ImageState;
  tags: string[];
  sourceDateEpoch?: number;
  /**
   * The manifest of the image the last step wrote (writeStepImages): the commit only names it
   * (the tags, or untagged), so the build's image is its last step's. Absent: the commit
   * writes `state` as a new image (builds that predate step images).
   */
  image?: Digest;
}

export interface CommitResult {
  imageId: Digest;
  manifestDigest: Digest;
}

export interface SaveInput {
  manifestDigest: Digest;
  tags: string[];
  dest: string;
}

/** A step's image (` ---> ID`) and what writeStepImages takes. */
export type { StepChange, StepImage, StepImagesSpec };

/** What a COPY step heartbeats: how much it copied so far, for clients' progress bars. */
export interface CopyHeartbeat {
  step: number;
  files: number;
  bytes: number;
}

export interface BuildActivities {
  planBuild(input: PlanInput): Promise<BuildPlan>;
  lookupCache(input: CacheLookupInput): Promise<CacheLookupResult>;
  resolveBase(base: BaseSpec & { kind: 'image' | 'scratch' }): Promise<ImageState>;
  copyStep(input: CopyInput): Promise<LayerResult>;
  runStep(input: RunInput): Promise<LayerResult>;
  workdirStep(input: WorkdirInput): Promise<LayerResult>;
  commitImage(input: CommitInput): Promise<CommitResult>;
  /** Writes the image after each of a few steps (a local activity: a config and a manifest blob each). */
  writeStepImages(input: StepImagesSpec): Promise<StepImage[]>;
  saveImage(input: SaveInput): Promise<{ dest: string; size: number }>;
}

export interface PushInput {
  manifestDigest: Digest;
  /** `host[:port]/repo:tag`. */
  reference: string;
}

/** Pushing runs on any worker: it reads only the store. */
export interface PushActivities {
  pushImage(input: PushInput): Promise<PushResult>;
}

/** An image the plan pinned: the layers the store lacks are fetched from its registry. */
export interface PullInput {
  ref: string;
  manifestDigest: Digest;
}

/** Pulling runs on any worker: it writes only the store. */
export interface PullActivities {
  /** Idempotent: an image whose layers are all stored costs no request. */
  pullImage(input: PullInput): Promise<{ fetched: number }>;
}
