// BuildPlan: what planBuild records in workflow history, and all the workflow needs to run
// a build. Plain JSON, kept small: no layer bytes, no whole configs per step.
import type { Digest } from '../digest.js';
import type { Platform } from '../image/platform.js';
import type { ContainerConfig, HistoryEntry, ImageConfigFile } from '../image/types.js';

/** Where a stage starts. An image base is pinned to digests at planning time. */
export type BaseSpec = { kind: 'scratch' } | { kind: 'image'; ref: string; manifestDigest: Digest; configDigest: Digest } | { kind: 'stage'; stage: number };

interface StepCommon {
  /** 1-based position among all steps of the build, for `Step N/M`. */
  number: number;
  /** 1-based line of the instruction in the Dockerfile. */
  line: number;
  /** The instruction as written (continuations joined), for `Step N/M : …` and errors. */
  text: string;
}

/** FROM: shown in the output; the stage's base is in StagePlan.base. */
export interface FromStep extends StepCommon {
  kind: 'from';
  /** Config the stage starts with on top of its base's (docker's default PATH). */
  patch?: Partial<ContainerConfig>;
}

/**
 * A change to the image config only (ENV, LABEL, CMD, …): applied in the workflow, no
 * activity, one empty_layer history entry. `patch` holds each changed field's new value;
 * null means "set to null" (as ENTRYPOINT does to an inherited CMD).
 */
export interface ConfigStep extends StepCommon {
  kind: 'config';
  patch: Partial<ContainerConfig>;
  history: HistoryEntry;
}

/** Where `COPY --from` reads: an earlier stage's result, or an image pinned at planning time. */
export type CopySource = { kind: 'stage'; stage: number } | { kind: 'image'; ref: string; manifestDigest: Digest; configDigest: Digest };

/**
 * COPY/ADD from the build context (or `--from` a stage or image; ADD also from URLs and git,
 * see addSource.ts) into the image: one layer.
 */
export interface CopyStep extends StepCommon {
  kind: 'copy';
  instruction: 'COPY' | 'ADD';
  /** `--from`; the build context when absent. */
  from?: CopySource;
  /** Source paths or wildcard patterns, relative to the source's root, expanded. */
  sources: string[];
  /** Absolute destination in the image (WORKDIR applied); a trailing `/` means a directory. */
  dest: string;
  /** `--chown` as written (expanded): `user[:group]`, names resolved against the image. */
  chown?: string;
  /** `--chmod`: an octal mode, or a checked symbolic mode (`u+x,go-w`) applied per entry. */
  chmod?: number | string;
  /** `--link`: the files are copied onto an empty base, so the layer stands alone. */
  link?: boolean;
  /** `--parents`: each source keeps its parent directories (after a `/./` pivot, if any). */
  parents?: boolean;
  /** `--exclude` patterns (.dockerignore syntax), matched below each source. */
  excludes?: string[];
  /** ADD `--checksum`: `sha256:<hex>` (or sha384/sha512) every downloaded file must match. */
  checksum?: string;
  /** ADD `--keep-git-dir`: a git source keeps its `.git` directory. */
  keepGitDir?: boolean;
  /** Heredoc sources (`COPY <<EOF /dest`): files named after the delimiter, body expanded. */
  inline?: InlineFile[];
  history: HistoryEntry;
}

/** A file a step creates from Dockerfile text (a heredoc), not from the context. */
export interface InlineFile {
  name: string;
  content: string;
}

/** Where a bind or cache mount's content comes from. An image is pinned at planning time. */
export type MountSource = { kind: 'context' } | { kind: 'stage'; stage: number } | { kind: 'image'; ref: string; manifestDigest: Digest };

/** `RUN --mount=…`: none of these is ever part of the step's layer. */
export type RunMount =
  | { type: 'bind'; target: string; from: MountSource; source: string; readwrite: boolean }
  | {
      type: 'cache';
      target: string;
      /** Names the cache directory on the worker; the target when not given. */
      id: string;
      sharing: 'shared' | 'private' | 'locked';
      /** Initial content of a new cache: `source` in `from`. */
      from?: MountSource;
      source: string;
      mode: number;
      uid: number;
      gid: number;
      readonly: boolean;
    }
  | { type: 'tmpfs'; target: string; size?: number }
  | { type: 'secret'; id: string; target?: string; env?: string; required: boolean; mode: number; uid: number; gid: number }
  /** A heredoc script with a shebang, mounted read-only and run by its interpreter. */
  | { type: 'inline'; target: string; files: (InlineFile & { mode: number })[] };

/** RUN: a process in the image, its filesystem changes become a layer. */
export interface RunStep extends StepCommon {
  kind: 'run';
  /** The argv: exec form as written, shell form through SHELL. */
  args: string[];
  /** The image's Env plus the build args in scope (ENV wins): RUN's only, never the config's. */
  env: string[];
  /** USER at this point (name or uid, with `:group`), resolved against the rootfs at run time. */
  user?: string;
  workdir: string;
  /** `RUN --network=…`; the build's setting when absent. */
  network?: 'host' | 'none';
  /** `RUN --mount=…` and heredoc scripts, in the order runc mounts them. */
  mounts?: RunMount[];
  history: HistoryEntry;
}

/** WORKDIR: sets the config and creates the directory when missing (a layer, as docker does). */
export interface WorkdirStep extends StepCommon {
  kind: 'workdir';
  path: string;
  patch: Partial<ContainerConfig>;
  history: HistoryEntry;
}

export type Step = FromStep | ConfigStep | CopyStep | RunStep | WorkdirStep;

export interface StagePlan {
  /** Position of the stage in the Dockerfile (0-based), as `COPY --from=0` counts. */
  index: number;
  name?: string;
  base: BaseSpec;
  /** Indexes of the stages this one needs finished first. */
  dependsOn: number[];
  steps: Step[];
}

export interface BuildPlan {
  /** Only the stages the target needs, each after the stages it depends on. */
  stages: StagePlan[];
  /** Index of the stage whose result is the image. */
  target: number;
  totalSteps: number;
  /** Things the user should hear about, e.g. build args no instruction used. */
  warnings: string[];
  /**
   * Pinned images whose layers the planning worker's store lacks: the workflow pulls them
   * before the stages run. Absent when the store had them all (and in plans recorded before
   * pulls existed, which therefore replay without a pull).
   */
  pull?: { ref: string; manifestDigest: Digest }[];
}

export interface ResolvedImage {
  ref: string;
  manifestDigest: Digest;
  configDigest: Digest;
  config: ImageConfigFile;
}

export interface PlanOptions {
  buildArgs: Record<string, string>;
  /** Stage name to build; the last stage when absent. */
  target?: string;
  /** The platform built for (and on); the host's by default. */
  platform?: Platform;
  /** `build --label`: labels set on the target stage's image after its last instruction. */
  labels?: Record<string, string>;
  /** Finds an image by reference (the store, else its registry) and pins it. Throws when absent. */
  resolveImage: (ref: string) => Promise<ResolvedImage>;
}
