// The scheduledBuild workflow's API: what a schedule's action starts it with, what each run
// returns, and the activities it calls. Types only, shared by client, worker and activities.
import type { Digest } from '../engine/digest.js';
import type { BuildRequest } from './types.js';

/** Where a scheduled build's context comes from. */
export type ScheduleSource =
  /** A context packed once, when the schedule was made: every run builds the same files. */
  | { kind: 'snapshot'; contextDigest: Digest; dockerfileDigest: Digest; dockerfileName: string; dir: string }
  /** A directory on the worker's machine, packed at each run (with its .dockerignore). */
  | { kind: 'dir'; dir: string; /** Absolute; DIR/Dockerfile when absent. */ dockerfile?: string }
  /** A git repository cloned at each run: `URL#REF:SUBDIR`, as ADD takes it. */
  | { kind: 'git'; url: string; /** Relative to the checkout's context; `Dockerfile` when absent. */ dockerfile?: string };

/** `always` builds at every run; `changed` skips a run whose inputs equal the last build's. */
export type ScheduleWhen = 'always' | 'changed';

/** The build flags a schedule keeps; the context and Dockerfile come from its source. */
export type ScheduledBuildOptions = Omit<BuildRequest, 'contextDigest' | 'dockerfileDigest' | 'dockerfileName' | 'outputs'>;

export interface ScheduledBuildRequest {
  scheduleId: string;
  source: ScheduleSource;
  when: ScheduleWhen;
  build: ScheduledBuildOptions;
}

/** The source as one run saw it: content in the store. */
export interface ResolvedSource {
  contextDigest: Digest;
  dockerfileDigest: Digest;
  dockerfileName: string;
  /** The commit a git source was at. */
  revision?: string;
}

/**
 * Everything a build's result depends on that a schedule can see change: `changed` compares
 * these with the last successful build's. Base images are the manifest digests the plan
 * pinned (FROM, COPY --from and RUN --mount from images), sorted.
 */
export interface ScheduledBuildInputs {
  contextDigest: Digest;
  dockerfileDigest: Digest;
  baseDigests: Digest[];
  build: ScheduledBuildOptions;
}

/** The last successful build of a schedule, kept in the store under its ID. */
export interface LastScheduledBuild {
  inputs: ScheduledBuildInputs;
  imageId: Digest;
  buildId: string;
  revision?: string;
}

export type ScheduledBuildResult =
  | {
      outcome: 'built';
      imageId: Digest;
      buildId: string;
      tags: string[];
      contextDigest: Digest;
      revision?: string;
      /** Each tag pushed (`--push`) with its manifest digest. */
      pushed?: { reference: string; digest: Digest }[];
    }
  | { outcome: 'skipped'; reason: string; imageId: Digest; lastBuildId: string; contextDigest: Digest; revision?: string };

export interface ScheduleActivities {
  /** Packs the directory or clones the ref into the store (a snapshot is returned as is). */
  resolveScheduleSource(source: ScheduleSource): Promise<ResolvedSource>;
  lastScheduledBuild(scheduleId: string): Promise<LastScheduledBuild | null>;
  recordScheduledBuild(input: { scheduleId: string; build: LastScheduledBuild }): Promise<void>;
}
