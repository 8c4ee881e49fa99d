// Bounds on what a Dockerfile and its build args can make planning do. A Dockerfile is hostile
// input: `ARG B=$A$A` doubled 26 times needs gigabytes, 20,000 ONBUILD lines make a plan of
// gigabytes, and a plan over Temporal's 2 MB payload limit hangs the build. Each limit fails
// early, with the line, before memory grows; docs/security.md lists them.
import { DockerfileError } from '../errors.js';

/** Bytes of Dockerfile text parsed. */
export const MAX_DOCKERFILE_BYTES = 1 << 20;
/** Instructions of one Dockerfile (continuation lines and heredoc bodies belong to theirs). */
export const MAX_INSTRUCTIONS = 10_000;
/** Build stages (FROM lines) of one Dockerfile. */
export const MAX_STAGES = 256;
/** ONBUILD triggers a base image may hand to the stage built on it. */
export const MAX_ONBUILD_TRIGGERS = 128;
/** Characters one expanded word (or heredoc body) may grow to. */
export const MAX_EXPANDED_LENGTH = 256 * 1024;
/** `--build-arg`s of one build, and the size of each name and value, and of all together. */
export const MAX_BUILD_ARGS = 1_000;
export const MAX_BUILD_ARG_NAME = 256;
export const MAX_BUILD_ARG_VALUE = 128 * 1024;
export const MAX_BUILD_ARGS_BYTES = 512 * 1024;
/**
 * Bytes of the serialized plan. The plan is one activity result in Temporal's history, and
 * each step travels again as an activity input: half of the 2 MB payload limit leaves room.
 */
export const MAX_PLAN_BYTES = 1 << 20;

/** Refuses a Dockerfile larger than MAX_DOCKERFILE_BYTES, before it is split into lines. */
export function checkDockerfileSize(text: string, file: string): void {
  // A string's length bounds its UTF-8 size from below: count bytes only when it might matter.
  if (text.length * 3 <= MAX_DOCKERFILE_BYTES) return;
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_DOCKERFILE_BYTES) {
    throw new DockerfileError({ file, line: 1 }, `the Dockerfile is ${bytes} bytes, more than the ${MAX_DOCKERFILE_BYTES} strata reads`);
  }
}

/** Refuses the instruction at `line` when it is one more than MAX_INSTRUCTIONS (or a FROM past MAX_STAGES). */
export function checkInstructionCount(count: number, stages: number, file: string, line: number): void {
  if (count > MAX_INSTRUCTIONS) throw new DockerfileError({ file, line }, `more than ${MAX_INSTRUCTIONS} instructions`);
  if (stages > MAX_STAGES) throw new DockerfileError({ file, line }, `more than ${MAX_STAGES} build stages`);
}

/** Refuses a base image with more ONBUILD triggers than MAX_ONBUILD_TRIGGERS. */
export function checkOnbuildTriggers(count: number, base: string, file: string, line: number): void {
  if (count > MAX_ONBUILD_TRIGGERS) {
    throw new DockerfileError({ file, line }, `FROM ${base}: the image has ${count} ONBUILD triggers, more than the ${MAX_ONBUILD_TRIGGERS} strata runs`);
  }
}

/** Problems with build args as a user would read them, or undefined when they are within the limits. */
export function buildArgsProblem(args: Record<string, unknown>): string | undefined {
  const entries = Object.entries(args);
  if (entries.length > MAX_BUILD_ARGS) return `${entries.length} build args, more than ${MAX_BUILD_ARGS}`;
  let total = 0;
  for (const [k, v] of entries) {
    if (k === '' || k.length > MAX_BUILD_ARG_NAME) return `build arg name ${JSON.stringify(k.slice(0, 40))} is empty or longer than ${MAX_BUILD_ARG_NAME} characters`;
    if (typeof v !== 'string') return `build arg ${k} is not a string`;
    if (v.length > MAX_BUILD_ARG_VALUE) return `build arg ${k} is longer than ${MAX_BUILD_ARG_VALUE} characters`;
    total += k.length + v.length;
  }
  if (total > MAX_BUILD_ARGS_BYTES) return `build args total ${total} characters, more than ${MAX_BUILD_ARGS_BYTES}`;
  return undefined;
}

/**
 * Counts the plan's serialized size step by step while it is made, so a Dockerfile whose plan
 * would not fit fails at the line that overflows it, with the memory used still small.
 */
export class PlanBudget {
  private bytes = 0;
  constructor(private readonly file: string) {}

  /** Counts `step` (made for the instruction at `line`) and returns it; throws past MAX_PLAN_BYTES. */
  add<T>(step: T, line: number): T {
    this.bytes += Buffer.byteLength(JSON.stringify(step));
    if (this.bytes > MAX_PLAN_BYTES) {
      throw new DockerfileError(
        { file: this.file, line },
        `the build plan grows past ${MAX_PLAN_BYTES} bytes here (expanded values, ONBUILD lists or build args repeated in every step); it could not be recorded in Temporal`,
      );
    }
    return step;
  }
}

/** The final check on a whole plan, whatever made it. */
export function checkPlanSize(plan: unknown, file: string): void {
  const bytes = Buffer.byteLength(JSON.stringify(plan));
  if (bytes > MAX_PLAN_BYTES) {
    throw new DockerfileError({ file, line: 1 }, `the build plan is ${bytes} bytes, more than ${MAX_PLAN_BYTES}; it could not be recorded in Temporal`);
  }
}
