// The worker's checks on workflow inputs. Anyone who reaches Temporal can start a workflow or
// schedule an activity with any input, so every activity checks what it is given before it
// acts: shapes and sizes, digests that name content in this store, tags that are references,
// pushes this worker allows, schedule sources it may read. A refused input fails the step at
// once (non-retryable, type INPUT_REFUSED) with what was refused and why. The same wrapper
// turns errors that input caused into user errors and keeps store paths out of messages.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Digest } from '../engine/digest.js';
import { EngineError, UserInputError } from '../engine/errors.js';
import { normalizeReference } from '../engine/image/reference.js';
import { MEDIA_TYPE_LAYER } from '../engine/image/types.js';
import { asEngineError, hideStorePaths } from '../engine/inputErrors.js';
import { buildArgsProblem, MAX_DOCKERFILE_BYTES, MAX_PLAN_BYTES, MAX_STAGES } from '../engine/plan/limits.js';
import { checkSymbolicMode } from '../engine/plan/mode.js';
import { registryReference } from '../engine/registry/reference.js';
import { SCHEDULE_ID } from '../engine/store/schedules.js';
import type { Store } from '../engine/store/store.js';
import type { ActivityDeps } from './index.js';

/** The error every check throws: `refuse FIELD: WHY`. */
export class InputRefused extends UserInputError {
  constructor(field: string, detail: string) {
    super('INPUT_REFUSED', `refuse ${field}: ${detail}`);
  }
}

type Check = (input: unknown, deps: ActivityDeps) => Promise<void>;

/**
 * Wraps each activity of `activities` that has a check: the check runs first, inside the
 * activity; errors (the check's and the activity's) leave as ApplicationFailures without
 * store paths, user errors non-retryable.
 */
export function withInputChecks<T extends object>(activities: T, deps: ActivityDeps): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities) as [string, (input: unknown) => Promise<unknown>][]) {
    const check = CHECKS[name];
    wrapped[name] = async (input: unknown) => {
      try {
        if (check) await check(input, deps);
        return await fn(input);
      } catch (err) {
        throw toFailure(err, deps.store.root);
      }
    };
  }
  return wrapped as T;
}

/**
 * An error as it leaves an activity: user errors (the engine's, or raw ones input caused)
 * non-retryable with their code as type; others retryable. Messages lose store paths; the
 * worker's log keeps the original of an unexpected error.
 */
function toFailure(err: unknown, root: string): unknown {
  const mapped = asEngineError(err, root);
  if (mapped instanceof EngineError) {
    return ApplicationFailure.create({ message: hideStorePaths(mapped.message, root), type: mapped.code, nonRetryable: mapped.userError });
  }
  if (mapped instanceof ApplicationFailure) {
    if (!mapped.message.includes(root)) return mapped;
    return ApplicationFailure.create({
      message: hideStorePaths(mapped.message, root),
      type: mapped.type ?? undefined,
      nonRetryable: mapped.nonRetryable ?? undefined,
      details: mapped.details ?? undefined,
    });
  }
  // Cancellation and Temporal's own failures pass as they are.
  if (!(mapped instanceof Error) || mapped.name.endsWith('Failure') || !mapped.message.includes(root)) return mapped;
  Context.current().log.warn('activity failed', { error: mapped.stack ?? mapped.message });
  return ApplicationFailure.create({ message: hideStorePaths(mapped.message, root), type: mapped.name, nonRetryable: false });
}

// ---- shapes ------------------------------------------------------------------------------

const DIGEST = /^sha256:[0-9a-f]{64}$/;
/** Past any plausible epoch a date can hold (year 9999). */
const MAX_EPOCH = 253_402_300_799;
const MAX_ID = 0xfffffffe;

function obj(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InputRefused(field, 'not an object');
  return v as Record<string, unknown>;
}

function str(v: unknown, field: string, opts: { max?: number; absolute?: boolean; noSlash?: boolean } = {}): string {
  if (typeof v !== 'string') throw new InputRefused(field, 'not a string');
  const max = opts.max ?? 4096;
  if (v.length > max) throw new InputRefused(field, `longer than ${max} characters`);
  if (v.includes('\0')) throw new InputRefused(field, 'holds a NUL character');
  if (opts.absolute && !v.startsWith('/')) throw new InputRefused(field, `${JSON.stringify(v)} is not an absolute path`);
  if (opts.noSlash && (v === '' || v === '.' || v === '..' || v.includes('/'))) throw new InputRefused(field, `${JSON.stringify(v)} is not a file name`);
  return v;
}

function optStr(v: unknown, field: string, opts?: Parameters<typeof str>[2]): string | undefined {
  return v === undefined ? undefined : str(v, field, opts);
}

function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw new InputRefused(field, `${JSON.stringify(v)} is not a whole number from ${min} to ${max}`);
  return v;
}

function optInt(v: unknown, field: string, min: number, max: number): number | undefined {
  return v === undefined ? undefined : int(v, field, min, max);
}

function optBool(v: unknown, field: string): void {
  if (v !== undefined && typeof v !== 'boolean') throw new InputRefused(field, 'not true or false');
}

function arr(v: unknown, field: string, max: number): unknown[] {
  if (!Array.isArray(v)) throw new InputRefused(field, 'not a list');
  if (v.length > max) throw new InputRefused(field, `more than ${max} items`);
  return v;
}

function strings(v: unknown, field: string, max: number, opts?: Parameters<typeof str>[2]): string[] {
  return arr(v, field, max).map((s, i) => str(s, `${field}[${i}]`, opts));
}

function oneOf<T extends string>(v: unknown, field: string, values: readonly T[]): T {
  if (!values.includes(v as T)) throw new InputRefused(field, `${JSON.stringify(v)} is not one of ${values.join(', ')}`);
  return v as T;
}

function digest(v: unknown, field: string): Digest {
  if (typeof v !== 'string' || !DIGEST.test(v)) throw new InputRefused(field, `${JSON.stringify(typeof v === 'string' ? v.slice(0, 80) : v)} is not sha256:<64 hex digits>`);
  return v as Digest;
}

async function blob(store: Store, v: unknown, field: string): Promise<Digest> {
  const d = digest(v, field);
  if (!(await store.hasBlob(d))) throw new InputRefused(field, `${d} is not in this worker's store`);
  return d;
}

async function layer(store: Store, v: unknown, field: string): Promise<Digest> {
  const d = digest(v, field);
  if (!(await store.hasLayer(d))) throw new InputRefused(field, `layer ${d} is not in this worker's store`);
  return d;
}

const epoch = (v: unknown, field: string) => optInt(v, field, 0, MAX_EPOCH);

/** A tag as the store keeps it: `name:tag`, normalized (the client normalizes every -t). */
function tag(v: unknown, field: string): string {
  const t = str(v, field, { max: 512 });
  let normal: string;
  try {
    normal = normalizeReference(t);
  } catch (err) {
    throw new InputRefused(field, (err as Error).message);
  }
  if (normal !== t || t.includes('@')) throw new InputRefused(field, `${JSON.stringify(t)} is not a normalized NAME:TAG`);
  return t;
}

// ---- plan steps --------------------------------------------------------------------------

function stepCommon(s: Record<string, unknown>, field: string, kind: string): void {
  if (s.kind !== kind) throw new InputRefused(`${field}.kind`, `${JSON.stringify(s.kind)} is not ${kind}`);
  int(s.number, `${field}.number`, 1, 1_000_000);
  int(s.line, `${field}.line`, 1, 10_000_000);
  str(s.text, `${field}.text`, { max: MAX_PLAN_BYTES });
  const h = obj(s.history, `${field}.history`);
  str(h.created_by, `${field}.history.created_by`, { max: MAX_PLAN_BYTES });
}

async function mountSource(store: Store, v: unknown, field: string): Promise<void> {
  const m = obj(v, field);
  const kind = oneOf(m.kind, `${field}.kind`, ['context', 'stage', 'image'] as const);
  if (kind === 'stage') int(m.stage, `${field}.stage`, 0, MAX_STAGES);
  if (kind === 'image') {
    str(m.ref, `${field}.ref`, { max: 1024 });
    await blob(store, m.manifestDigest, `${field}.manifestDigest`);
  }
}

function modeOwner(m: Record<string, unknown>, field: string): void {
  int(m.mode, `${field}.mode`, 0, 0o7777);
  int(m.uid, `${field}.uid`, 0, MAX_ID);
  int(m.gid, `${field}.gid`, 0, MAX_ID);
}

async function runMount(store: Store, v: unknown, field: string): Promise<void> {
  const m = obj(v, field);
  const type = oneOf(m.type, `${field}.type`, ['bind', 'cache', 'tmpfs', 'secret', 'inline'] as const);
  if (type !== 'secret' || m.target !== undefined) str(m.target, `${field}.target`, { absolute: true });
  switch (type) {
    case 'bind':
      await mountSource(store, m.from, `${field}.from`);
      str(m.source, `${field}.source`);
      optBool(m.readwrite, `${field}.readwrite`);
      break;
    case 'cache':
      str(m.id, `${field}.id`, { max: 1024 });
      oneOf(m.sharing, `${field}.sharing`, ['shared', 'private', 'locked'] as const);
      if (m.from !== undefined) await mountSource(store, m.from, `${field}.from`);
      str(m.source, `${field}.source`);
      modeOwner(m, field);
      optBool(m.readonly, `${field}.readonly`);
      break;
    case 'tmpfs':
      optInt(m.size, `${field}.size`, 0, Number.MAX_SAFE_INTEGER);
      break;
    case 'secret':
      str(m.id, `${field}.id`, { max: 1024 });
      if (m.env !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(str(m.env, `${field}.env`, { max: 256 }))) throw new InputRefused(`${field}.env`, 'not a variable name');
      optBool(m.required, `${field}.required`);
      modeOwner(m, field);
      break;
    case 'inline':
      arr(m.files, `${field}.files`, 64).forEach((f, i) => {
        const file = obj(f, `${field}.files[${i}]`);
        str(file.name, `${field}.files[${i}].name`, { max: 255, noSlash: true });
        str(file.content, `${field}.files[${i}].content`, { max: MAX_PLAN_BYTES });
        int(file.mode, `${field}.files[${i}].mode`, 0, 0o7777);
      });
      break;
  }
}

async function runStep(store: Store, v: unknown, field: string): Promise<void> {
  const s = obj(v, field);
  stepCommon(s, field, 'run');
  if (strings(s.args, `${field}.args`, 100_000, { max: MAX_PLAN_BYTES }).length === 0) throw new InputRefused(`${field}.args`, 'empty');
  strings(s.env, `${field}.env`, 100_000, { max: MAX_PLAN_BYTES });
  optStr(s.user, `${field}.user`, { max: 1024 });
  str(s.workdir, `${field}.workdir`, { absolute: true });
  if (s.mounts !== undefined) {
    const mounts = arr(s.mounts, `${field}.mounts`, 256);
    for (let i = 0; i < mounts.length; i++) await runMount(store, mounts[i], `${field}.mounts[${i}]`);
  }
}

function copyStep(v: unknown, field: string): void {
  const s = obj(v, field);
  stepCommon(s, field, 'copy');
  oneOf(s.instruction, `${field}.instruction`, ['COPY', 'ADD'] as const);
  strings(s.sources, `${field}.sources`, 100_000);
  str(s.dest, `${field}.dest`, { absolute: true });
  optStr(s.chown, `${field}.chown`, { max: 1024 });
  if (typeof s.chmod === 'number') int(s.chmod, `${field}.chmod`, 0, 0o7777);
  else if (s.chmod !== undefined) {
    const problem = checkSymbolicMode(str(s.chmod, `${field}.chmod`, { max: 256 }));
    if (problem) throw new InputRefused(`${field}.chmod`, problem);
  }
  for (const k of ['link', 'parents', 'keepGitDir'] as const) optBool(s[k], `${field}.${k}`);
  if (s.excludes !== undefined) strings(s.excludes, `${field}.excludes`, 10_000);
  if (s.checksum !== undefined && !/^sha(256:[0-9a-f]{64}|384:[0-9a-f]{96}|512:[0-9a-f]{128})$/.test(str(s.checksum, `${field}.checksum`))) {
    throw new InputRefused(`${field}.checksum`, 'not sha256:, sha384: or sha512: and the hex digest');
  }
  if (s.inline !== undefined) {
    arr(s.inline, `${field}.inline`, 1_000).forEach((f, i) => {
      const file = obj(f, `${field}.inline[${i}]`);
      str(file.name, `${field}.inline[${i}].name`, { max: 255, noSlash: true });
      str(file.content, `${field}.inline[${i}].content`, { max: MAX_PLAN_BYTES });
    });
  }
}

// ---- image state (commit) ----------------------------------------------------------------

/** Each layer is in the store, chained on the one before, and described as the store has it. */
async function imageLayers(store: Store, v: unknown, field: string): Promise<void> {
  const layers = arr(v, field, 10_000);
  let parent: Digest | undefined;
  for (let i = 0; i < layers.length; i++) {
    const f = `${field}[${i}]`;
    const l = obj(layers[i], f);
    const chain = await layer(store, l.chainId, `${f}.chainId`);
    const meta = await store.readLayerMeta(chain);
    if (meta.parent !== parent) throw new InputRefused(`${f}.chainId`, `layer ${chain} does not sit on ${parent ?? 'nothing'}`);
    const expected = {
      diffId: meta.diffId,
      digest: meta.blob?.digest ?? meta.diffId,
      blobSize: meta.blob?.size ?? meta.size,
      mediaType: meta.blob?.mediaType ?? MEDIA_TYPE_LAYER,
    };
    for (const [k, want] of Object.entries(expected)) {
      if (l[k] !== want) throw new InputRefused(`${f}.${k}`, `${JSON.stringify(l[k])} is not what the store has for layer ${chain}`);
    }
    parent = chain;
  }
}

// ---- the checks, by activity name ----------------------------------------------------------

/** Every activity's check: an activity without one is refused by the worker's test (test/unit/validate.test.ts). */
export const CHECKS: Record<string, Check> = {
  async planBuild(input, { store }) {
    const i = obj(input, 'input');
    const d = await blob(store, i.dockerfileDigest, 'dockerfileDigest');
    const size = (await fs.stat(store.blobPath(d))).size;
    if (size > MAX_DOCKERFILE_BYTES) throw new InputRefused('dockerfileDigest', `the Dockerfile is ${size} bytes, more than ${MAX_DOCKERFILE_BYTES}`);
    if (/[\x00-\x1f\x7f]/.test(str(i.dockerfileName, 'dockerfileName', { max: 255 }))) throw new InputRefused('dockerfileName', 'holds control characters');
    const problem = buildArgsProblem(obj(i.buildArgs, 'buildArgs'));
    if (problem) throw new InputRefused('buildArgs', problem);
    optStr(i.target, 'target', { max: 255 });
  },

  async resolveBase(input, { store }) {
    const b = obj(input, 'base');
    if (oneOf(b.kind, 'base.kind', ['scratch', 'image'] as const) === 'image') {
      str(b.ref, 'base.ref', { max: 1024 });
      await blob(store, b.manifestDigest, 'base.manifestDigest');
    }
  },

  async copyStep(input, { store }) {
    const i = obj(input, 'input');
    if (i.parentTop !== undefined) await layer(store, i.parentTop, 'parentTop');
    await blob(store, i.contextDigest, 'contextDigest');
    if (i.from !== undefined) {
      const from = obj(i.from, 'from');
      if (from.top !== undefined) await layer(store, from.top, 'from.top');
    }
    epoch(i.sourceDateEpoch, 'sourceDateEpoch');
    copyStep(i.step, 'step');
  },

  async runStep(input, { store }) {
    const i = obj(input, 'input');
    if (i.parentTop !== undefined) await layer(store, i.parentTop, 'parentTop');
    await runStep(store, i.step, 'step');
    epoch(i.sourceDateEpoch, 'sourceDateEpoch');
    optInt(i.stepTimeoutMs, 'stepTimeoutMs', 1, 30 * 24 * 3600_000);
    if (i.contextDigest !== undefined) await blob(store, i.contextDigest, 'contextDigest');
    if (i.stageTops !== undefined) {
      const tops = arr(i.stageTops, 'stageTops', MAX_STAGES);
      for (let n = 0; n < tops.length; n++) {
        const t = obj(tops[n], `stageTops[${n}]`);
        int(t.stage, `stageTops[${n}].stage`, 0, MAX_STAGES);
        if (t.top !== undefined) await layer(store, t.top, `stageTops[${n}].top`);
      }
    }
  },

  async workdirStep(input, { store }) {
    const i = obj(input, 'input');
    if (i.parentTop !== undefined) await layer(store, i.parentTop, 'parentTop');
    const s = obj(i.step, 'step');
    stepCommon(s, 'step', 'workdir');
    str(s.path, 'step.path', { absolute: true });
    epoch(i.sourceDateEpoch, 'sourceDateEpoch');
  },

  async commitImage(input, { store }) {
    const i = obj(input, 'input');
    const state = obj(i.state, 'state');
    obj(state.config, 'state.config');
    str(state.architecture, 'state.architecture', { max: 64 });
    str(state.os, 'state.os', { max: 64 });
    arr(state.history, 'state.history', 100_000).forEach((h, n) => obj(h, `state.history[${n}]`));
    await imageLayers(store, state.layers, 'state.layers');
    arr(i.tags, 'tags', 1_000).forEach((t, n) => tag(t, `tags[${n}]`));
    epoch(i.sourceDateEpoch, 'sourceDateEpoch');
  },

  async saveImage(input, { store }) {
    const i = obj(input, 'input');
    await blob(store, i.manifestDigest, 'manifestDigest');
    arr(i.tags, 'tags', 1_000).forEach((t, n) => tag(t, `tags[${n}]`));
    // Where it may be written is decided where it is written (engine/archive/output.ts).
    str(i.dest, 'dest');
  },

  async pushImage(input, { store, allowPush }) {
    if (!allowPush) {
      throw new InputRefused('push', "this worker does not push with its credentials (start it with `strata worker --allow-push` or STRATA_ALLOW_PUSH=1); push from the client: strata push IMAGE");
    }
    const i = obj(input, 'input');
    await blob(store, i.manifestDigest, 'manifestDigest');
    const ref = str(i.reference, 'reference', { max: 512 });
    if (ref.includes('@')) throw new InputRefused('reference', `${JSON.stringify(ref)} is a digest reference; a push needs a tag`);
    try {
      registryReference(ref);
    } catch (err) {
      throw new InputRefused('reference', (err as Error).message);
    }
  },

  async resolveScheduleSource(input, { store, sourceDir }) {
    const s = obj(input, 'source');
    const kind = oneOf(s.kind, 'source.kind', ['snapshot', 'dir', 'git'] as const);
    if (kind === 'snapshot') {
      await blob(store, s.contextDigest, 'source.contextDigest');
      await blob(store, s.dockerfileDigest, 'source.dockerfileDigest');
      str(s.dockerfileName, 'source.dockerfileName', { max: 255 });
    } else if (kind === 'dir') {
      const dir = str(s.dir, 'source.dir', { absolute: true });
      const dockerfile = optStr(s.dockerfile, 'source.dockerfile', { absolute: true });
      await insideSourceDir(sourceDir, dir, 'source.dir');
      if (dockerfile !== undefined) await insideSourceDir(sourceDir, dockerfile, 'source.dockerfile');
    } else {
      str(s.url, 'source.url', { max: 8192 });
      // A path in the checkout, resolved inside it.
      optStr(s.dockerfile, 'source.dockerfile');
    }
  },

  async lastScheduledBuild(input) {
    scheduleId(input, 'scheduleId');
  },

  async recordScheduledBuild(input, { store }) {
    const i = obj(input, 'input');
    scheduleId(i.scheduleId, 'scheduleId');
    const b = obj(i.build, 'build');
    digest(b.imageId, 'build.imageId');
    str(b.buildId, 'build.buildId', { max: 1024 });
    const inputs = obj(b.inputs, 'build.inputs');
    await blob(store, inputs.contextDigest, 'build.inputs.contextDigest');
    await blob(store, inputs.dockerfileDigest, 'build.inputs.dockerfileDigest');
    arr(inputs.baseDigests, 'build.inputs.baseDigests', 10_000).forEach((d, n) => digest(d, `build.inputs.baseDigests[${n}]`));
    obj(inputs.build, 'build.inputs.build');
  },
};

function scheduleId(v: unknown, field: string): string {
  const id = str(v, field, { max: 200 });
  if (!SCHEDULE_ID.test(id)) throw new InputRefused(field, `${JSON.stringify(id)} is not a schedule ID`);
  return id;
}

/**
 * A schedule's directory (or Dockerfile) must lie, symlinks resolved, inside the directory the
 * worker lets schedules read (STRATA_SOURCE_DIR): without it a schedule could pack any file
 * the worker can read into an image.
 */
async function insideSourceDir(sourceDir: string | undefined, p: string, field: string): Promise<void> {
  if (sourceDir === undefined) {
    throw new InputRefused(field, "this worker packs no directories of its disk for schedules (start it with STRATA_SOURCE_DIR=DIR to allow those under DIR); use --source-mode snapshot or a git source");
  }
  const root = await fs.realpath(sourceDir);
  const real = await fs.realpath(p).catch(() => path.resolve(p));
  if (real !== root && !real.startsWith(root + '/')) throw new InputRefused(field, `${p} is not inside the worker's source directory ${sourceDir} (STRATA_SOURCE_DIR)`);
}
