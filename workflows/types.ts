// The buildImage workflow's API: its input, result, progress query, and the activity
// contracts it calls. Types only, shared by client, worker and activities.
import type { Digest } from '../engine/digest.js';
import type { HistoryEntry, ImageState, LayerRef } from '../engine/image/types.js';
import type { BaseSpec, BuildPlan, CopyStep } from '../engine/plan/types.js';

export interface OutputSpec {
  /** `docker`: a tar for `docker load` (OCI layout + docker's manifest.json). */
  type: 'docker';
  /** Absolute path on the worker's machine. */
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
}

export interface BuildResult {
  imageId: Digest;
  manifestDigest: Digest;
  tags: string[];
  outputs: string[];
  warnings: string[];
}

export type StepStatus = 'pending' | 'running' | 'done' | 'failed';

export interface StepProgress {
  number: number;
  text: string;
  status: StepStatus;
  /** Short ID of the layer a step made, for ` ---> 0123456789ab`. */
  layer?: string;
  error?: string;
}

export interface BuildProgress {
  phase: 'planning' | 'building' | 'committing' | 'saving' | 'done' | 'failed';
  totalSteps: number;
  steps: StepProgress[];
  warnings: string[];
}

// ---- activity contracts ----

export interface PlanInput {
  dockerfileDigest: Digest;
  dockerfileName: string;
  buildArgs: Record<string, string>;
  target?: string;
}

export interface CopyInput {
  parent: ImageState;
  step: CopyStep;
  contextDigest: Digest;
  sourceDateEpoch?: number;
}

export interface LayerResult {
  layer: LayerRef;
  history: HistoryEntry;
}

export interface CommitInput {
  state: ImageState;
  tags: string[];
  sourceDateEpoch?: number;
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

export interface BuildActivities {
  planBuild(input: PlanInput): Promise<BuildPlan>;
  resolveBase(base: BaseSpec & { kind: 'image' | 'scratch' }): Promise<ImageState>;
  copyStep(input: CopyInput): Promise<LayerResult>;
  commitImage(input: CommitInput): Promise<CommitResult>;
  saveImage(input: SaveInput): Promise<{ dest: string; size: number }>;
}
