// The workflows' own early checks on their input: the fields a workflow uses itself (timer
// lengths, activity timeouts, search attributes) before any activity sees them. A value they
// cannot use (NaN, a negative window, a tag list too big for a search attribute) would fail
// every workflow task, and Temporal retries those forever: the build would hang. Refused here,
// it fails with INPUT_REFUSED. The activities check everything again (activities/validate.ts):
// theirs is the check that counts. Deterministic; value imports from @temporalio/workflow only.
import { ApplicationFailure } from '@temporalio/workflow';

/** Longest retry window and step timeout a build may ask for. */
const MAX_WINDOW_MS = 366 * 24 * 3600_000;
const MAX_STEP_TIMEOUT_MS = 30 * 24 * 3600_000;
/** Tags of one build: each is a search attribute keyword too. */
const MAX_TAGS = 100;
/** `--cache-from` repositories of one build: each is asked on every local miss. */
const MAX_CACHE_FROM = 8;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

function refuse(field: string, detail: string): never {
  throw ApplicationFailure.nonRetryable(`refuse ${field}: ${detail}`, 'INPUT_REFUSED');
}

function record(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) refuse(field, 'not an object');
  return v as Record<string, unknown>;
}

function optMs(v: unknown, field: string, max: number): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) refuse(field, `${JSON.stringify(v)} is not a whole number of milliseconds from 0 to ${max}`);
}

/** Checks what buildImage uses itself; throws a non-retryable INPUT_REFUSED failure. */
export function checkBuildRequest(v: unknown): void {
  const r = record(v, 'request');
  if (typeof r.contextDigest !== 'string' || !DIGEST.test(r.contextDigest)) refuse('contextDigest', 'not sha256:<64 hex digits>');
  if (typeof r.dockerfileDigest !== 'string' || !DIGEST.test(r.dockerfileDigest)) refuse('dockerfileDigest', 'not sha256:<64 hex digits>');
  if (typeof r.dockerfileName !== 'string') refuse('dockerfileName', 'not a string');
  record(r.buildArgs, 'buildArgs');
  if (r.target !== undefined && typeof r.target !== 'string') refuse('target', 'not a string');
  if (!Array.isArray(r.tags) || r.tags.length > MAX_TAGS) refuse('tags', `not a list of at most ${MAX_TAGS} tags`);
  for (const t of r.tags) if (typeof t !== 'string' || t === '' || t.length > 255) refuse('tags', `${JSON.stringify(t)} is not a tag`);
  if (!Array.isArray(r.outputs) || r.outputs.length > 16) refuse('outputs', 'not a list of at most 16 outputs');
  for (const o of r.outputs) {
    const out = record(o, 'outputs[]');
    if (out.type !== 'docker' || typeof out.dest !== 'string') refuse('outputs[]', 'not {type: "docker", dest: PATH}');
  }
  if (r.push !== undefined && typeof r.push !== 'boolean') refuse('push', 'not true or false');
  if (r.cacheFrom !== undefined && (!Array.isArray(r.cacheFrom) || r.cacheFrom.length > MAX_CACHE_FROM || !r.cacheFrom.every((c) => typeof c === 'string' && c.length <= 512)))
    refuse('cacheFrom', `not a list of at most ${MAX_CACHE_FROM} repositories`);
  optMs(r.stepTimeoutMs, 'stepTimeoutMs', MAX_STEP_TIMEOUT_MS);
  if (r.stepTimeoutMs === 0) refuse('stepTimeoutMs', 'must be positive');
  optMs(r.retryWindowMs, 'retryWindowMs', MAX_WINDOW_MS);
  if (r.sourceDateEpoch !== undefined && (typeof r.sourceDateEpoch !== 'number' || !Number.isSafeInteger(r.sourceDateEpoch) || r.sourceDateEpoch < 0)) {
    refuse('sourceDateEpoch', `${JSON.stringify(r.sourceDateEpoch)} is not a whole number of seconds`);
  }
}

/** Checks a scheduled run's request; its build options are checked again by the child buildImage. */
export function checkScheduledRequest(v: unknown): void {
  const r = record(v, 'request');
  if (typeof r.scheduleId !== 'string' || !/^[A-Za-z0-9_][\w.-]{0,199}$/.test(r.scheduleId)) refuse('scheduleId', 'not a schedule ID');
  if (r.when !== 'always' && r.when !== 'changed') refuse('when', 'not always or changed');
  const source = record(r.source, 'source');
  if (source.kind !== 'snapshot' && source.kind !== 'dir' && source.kind !== 'git') refuse('source.kind', 'not snapshot, dir or git');
  const build = record(r.build, 'build');
  checkBuildRequest({ ...build, contextDigest: 'sha256:' + '0'.repeat(64), dockerfileDigest: 'sha256:' + '0'.repeat(64), dockerfileName: 'Dockerfile', outputs: [] });
}
