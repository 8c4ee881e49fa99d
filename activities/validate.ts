// The worker's checks on workflow inputs. Anyone who reaches Temporal can start a workflow or
// schedule an activity with any input, so every activity checks what it is given before it
// acts: shapes and sizes, digests that name content in this store, tags that are references,
// pushes this worker allows, schedule sources it may read. A refused input fails the step at
// once (non-retryable, type INPUT_REFUSED) with what was refused and why. The same wrapper
// turns errors that input caused into user errors and keeps store paths out of messages.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { EngineError } from '../engine/errors.js';
import { asEngineError, hideStorePaths } from '../engine/inputErrors.js';
import { fetchingStore } from '../engine/remote/remoteStore.js';
import { buildArgsProblem, MAX_DOCKERFILE_BYTES, MAX_STAGES } from '../engine/dockerfile/limits.js';
import { isRepositoryName, registryReference } from '../engine/registry/reference.js';
import { SCHEDULE_ID } from '../engine/store/schedules.js';
import type { ActivityDeps } from './index.js';
import type { Store } from '../engine/store/store.js';
import {
  arr,
  blob,
  copyStep,
  digest,
  epoch,
  imageLayers,
  InputRefused,
  int,
  layer,
  obj,
  oneOf,
  optBool,
  optInt,
  optStr,
  runStep,
  stepCommon,
  str,
  strings,
  tag,
} from './inputShapes.js';

/** `--cache-from` repositories of one build (workflows/checkRequest.ts bounds the request alike). */
const MAX_CACHE_FROM = 8;

export { InputRefused } from './inputShapes.js';

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
        // With a remote store, what the input names and this store lacks is fetched (and verified) first.
        const remote = deps.remote?.withSignal(Context.current().cancellationSignal);
        if (check) await check(input, remote ? { ...deps, store: fetchingStore(deps.store, remote) } : deps);
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

// ---- the checks, by activity name ----------------------------------------------------------

async function stageTops(store: Store, v: unknown): Promise<void> {
  const tops = arr(v, 'stageTops', MAX_STAGES);
  for (let n = 0; n < tops.length; n++) {
    const t = obj(tops[n], `stageTops[${n}]`);
    int(t.stage, `stageTops[${n}].stage`, 0, MAX_STAGES);
    if (t.top !== undefined) await layer(store, t.top, `stageTops[${n}].top`);
  }
}

/** A step of a plan, as a look-up keys it: every kind a stage holds. */
async function planStep(store: Store, v: unknown, field: string): Promise<void> {
  const s = obj(v, field);
  switch (oneOf(s.kind, `${field}.kind`, ['from', 'config', 'copy', 'run', 'workdir'] as const)) {
    case 'copy':
      return copyStep(s, field);
    case 'run':
      return runStep(store, s, field);
    case 'workdir':
      stepCommon(s, field, 'workdir');
      str(s.path, `${field}.path`, { absolute: true });
      return;
    case 'from':
      int(s.number, `${field}.number`, 1, 1_000_000);
      int(s.line, `${field}.line`, 1, 10_000_000);
      str(s.text, `${field}.text`, { max: 1_000_000 });
      return;
    case 'config':
      stepCommon(s, field, 'config');
      obj(s.patch, `${field}.patch`);
  }
}

function hasControlCharacter(text: string): boolean {
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/** Every activity's check: an activity without one is refused by the worker's test (test/unit/validate.test.ts). */
export const CHECKS: Record<string, Check> = {
  async planBuild(input, { store }) {
    const i = obj(input, 'input');
    const d = await blob(store, i.dockerfileDigest, 'dockerfileDigest');
    const size = (await fs.stat(store.blobPath(d))).size;
    if (size > MAX_DOCKERFILE_BYTES) throw new InputRefused('dockerfileDigest', `the Dockerfile is ${size} bytes, more than ${MAX_DOCKERFILE_BYTES}`);
    if (hasControlCharacter(str(i.dockerfileName, 'dockerfileName', { max: 255 }))) throw new InputRefused('dockerfileName', 'holds control characters');
    const problem = buildArgsProblem(obj(i.buildArgs, 'buildArgs'));
    if (problem) throw new InputRefused('buildArgs', problem);
    optStr(i.target, 'target', { max: 255 });
    // Their count and sizes are the planner's to bound (it names the flag in its error).
    if (i.labels !== undefined) for (const [k, v] of Object.entries(obj(i.labels, 'labels'))) str(v, `labels.${k}`);
  },

  async lookupCache(input, { store }) {
    const i = obj(input, 'input');
    const start = obj(i.start, 'start');
    const kind = oneOf(start.kind, 'start.kind', ['base', 'key', 'result'] as const);
    if (kind === 'base') {
      const b = obj(start.base, 'start.base');
      if (oneOf(b.kind, 'start.base.kind', ['scratch', 'image'] as const) === 'image') {
        str(b.ref, 'start.base.ref', { max: 1024 });
        await blob(store, b.manifestDigest, 'start.base.manifestDigest');
      }
    } else if (kind === 'key') digest(start.key, 'start.key');
    else {
      digest(start.parentKey, 'start.parentKey');
      if (start.diffId !== undefined) digest(start.diffId, 'start.diffId');
    }
    if (i.parentTop !== undefined) await layer(store, i.parentTop, 'parentTop');
    await blob(store, i.contextDigest, 'contextDigest');
    epoch(i.sourceDateEpoch, 'sourceDateEpoch');
    optBool(i.useCache, 'useCache');
    if (i.stageTops !== undefined) await stageTops(store, i.stageTops);
    const steps = arr(i.steps, 'steps', 100_000);
    for (let n = 0; n < steps.length; n++) await planStep(store, steps[n], `steps[${n}]`);
    if (i.cacheFrom !== undefined) {
      for (const [n, name] of strings(i.cacheFrom, 'cacheFrom', MAX_CACHE_FROM, { max: 512 }).entries()) {
        if (!isRepositoryName(name)) throw new InputRefused(`cacheFrom[${n}]`, `${JSON.stringify(name)} is not REGISTRY/REPOSITORY without tag or digest`);
        try {
          registryReference(`${name}:latest`);
        } catch (err) {
          throw new InputRefused(`cacheFrom[${n}]`, (err as Error).message);
        }
      }
    }
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
    if (i.cacheKey !== undefined) digest(i.cacheKey, 'cacheKey');
  },

  async runStep(input, { store }) {
    const i = obj(input, 'input');
    if (i.parentTop !== undefined) await layer(store, i.parentTop, 'parentTop');
    await runStep(store, i.step, 'step');
    epoch(i.sourceDateEpoch, 'sourceDateEpoch');
    optInt(i.stepTimeoutMs, 'stepTimeoutMs', 1, 30 * 24 * 3600_000);
    if (i.contextDigest !== undefined) await blob(store, i.contextDigest, 'contextDigest');
    if (i.stageTops !== undefined) await stageTops(store, i.stageTops);
    if (i.cacheKey !== undefined) digest(i.cacheKey, 'cacheKey');
  },

  async workdirStep(input, { store }) {
    const i = obj(input, 'input');
    if (i.parentTop !== undefined) await layer(store, i.parentTop, 'parentTop');
    const s = obj(i.step, 'step');
    stepCommon(s, 'step', 'workdir');
    str(s.path, 'step.path', { absolute: true });
    epoch(i.sourceDateEpoch, 'sourceDateEpoch');
    if (i.cacheKey !== undefined) digest(i.cacheKey, 'cacheKey');
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
    if (i.image !== undefined) await blob(store, i.image, 'image');
  },

  async writeStepImages(input, { store }) {
    const i = obj(input, 'input');
    const parent = obj(i.parent, 'parent');
    if (parent.manifestDigest !== undefined) await blob(store, parent.manifestDigest, 'parent.manifestDigest');
    else {
      const p = obj(parent.platform, 'parent.platform');
      str(p.os, 'parent.platform.os', { max: 64 });
      str(p.architecture, 'parent.platform.architecture', { max: 64 });
    }
    const steps = arr(i.steps, 'steps', 100_000);
    for (let n = 0; n < steps.length; n++) {
      for (const [m, c] of arr(steps[n], `steps[${n}]`, 10_000).entries()) {
        const change = obj(c, `steps[${n}][${m}]`);
        if (change.config !== undefined) obj(change.config, `steps[${n}][${m}].config`);
        if (change.history !== undefined) obj(change.history, `steps[${n}][${m}].history`);
        if (change.layer !== undefined) await layer(store, obj(change.layer, `steps[${n}][${m}].layer`).chainId, `steps[${n}][${m}].layer.chainId`);
      }
    }
    if (i.cached !== undefined) {
      const cached = arr(i.cached, 'cached', steps.length);
      cached.forEach((c, n) => {
        if (typeof c !== 'boolean') throw new InputRefused(`cached[${n}]`, 'not true or false');
      });
    }
    epoch(i.sourceDateEpoch, 'sourceDateEpoch');
  },

  async saveImage(input, { store }) {
    const i = obj(input, 'input');
    await blob(store, i.manifestDigest, 'manifestDigest');
    arr(i.tags, 'tags', 1_000).forEach((t, n) => tag(t, `tags[${n}]`));
    // Where it may be written is decided where it is written (engine/archive/output.ts).
    str(i.dest, 'dest');
  },

  async pullImage(input) {
    // The manifest need not be in this store yet: the pull is what fetches it.
    const i = obj(input, 'input');
    digest(i.manifestDigest, 'manifestDigest');
    const ref = str(i.ref, 'ref', { max: 512 });
    try {
      registryReference(ref);
    } catch (err) {
      throw new InputRefused('ref', (err as Error).message);
    }
  },

  async pushImage(input, { store, allowPush }) {
    if (!allowPush) {
      throw new InputRefused(
        'push',
        'this worker does not push with its credentials (start it with `strata worker --allow-push` or STRATA_ALLOW_PUSH=1); push from the client: strata push IMAGE',
      );
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
    throw new InputRefused(
      field,
      'this worker packs no directories of its disk for schedules (start it with STRATA_SOURCE_DIR=DIR to allow those under DIR); use --source-mode snapshot or a git source',
    );
  }
  const root = await fs.realpath(sourceDir);
  const real = await fs.realpath(p).catch(() => path.resolve(p));
  if (real !== root && !real.startsWith(root + '/')) throw new InputRefused(field, `${p} is not inside the worker's source directory ${sourceDir} (STRATA_SOURCE_DIR)`);
}
