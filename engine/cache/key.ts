// The instruction cache's key, made by ONE function for look-up and store alike: sha256 of the
// canonical JSON of [parent key, step, input digests] (STYLE.md; BuildKit chains its keys the
// same way). A stage's chain starts at its base (the pinned image's digests, or scratch and the
// platform) and goes through every step, config-only ones included, so an ENV change changes
// every later key. Nothing here reads files: inputs arrive as digests (lookup.ts computes them).
import { canonicalJson, sha256, type Digest } from '../digest.js';
import type { Platform } from '../image/platform.js';
import type { BaseSpec, CopySource, MountSource, RunMount, Step } from '../plan/types.js';

/** Changes when what a key means changes, so entries made under older rules are never found. */
const KEY_VERSION = 1;

/** The one key function. `parent` is null only at the root of a chain. */
export function cacheKey(parent: Digest | null, step: unknown, inputs: Record<string, unknown>): Digest {
  return sha256(canonicalJson([parent, step, inputs]));
}

/**
 * The root of a stage's chain: its base image pinned by digests (or scratch for a platform),
 * and SOURCE_DATE_EPOCH, which clamps the times in every layer and history row after it.
 */
export function baseKey(base: BaseSpec & { kind: 'image' | 'scratch' }, platform: Platform, sourceDateEpoch: number | undefined): Digest {
  const from =
    base.kind === 'image'
      ? { image: { manifest: base.manifestDigest, config: base.configDigest } }
      : { scratch: { os: platform.os, architecture: platform.architecture, variant: platform.variant } };
  return cacheKey(null, { kind: 'base', version: KEY_VERSION, ...from }, { sourceDateEpoch: sourceDateEpoch ?? null });
}

/**
 * The part of a step its key covers: the instruction after expansion (its planned fields and
 * history text), without where it stands (number, line, the text as written), and with each
 * stage it reads (COPY --from, RUN --mount from=) named by that stage's result, its top
 * layer's chainID (null: the stage has no layer), not by its index.
 */
export function keyedStep(step: Step, stageTops: ReadonlyMap<number, Digest | undefined>): unknown {
  const { number: _n, line: _l, text: _t, ...rest } = step;
  const top = (stage: number): Digest | null => {
    if (!stageTops.has(stage)) throw new Error(`cache key: the result of stage ${stage} is needed before its key`);
    return stageTops.get(stage) ?? null;
  };
  const source = <S extends CopySource | MountSource>(s: S): S | { kind: 'stage'; top: Digest | null } => (s.kind === 'stage' ? { kind: 'stage', top: top(s.stage) } : s);
  if (rest.kind === 'copy' && rest.from) return { ...rest, from: source(rest.from) };
  if (rest.kind === 'run' && rest.mounts) {
    return {
      ...rest,
      mounts: rest.mounts.map((m: RunMount) => ((m.type === 'bind' || m.type === 'cache') && m.from ? { ...m, from: source(m.from) } : m)),
    };
  }
  return rest;
}

/**
 * What a step's key takes besides the step itself: digests of what it reads. `unknown` marks
 * a step whose key cannot be known before it runs (ADD of a URL without --checksum): it is
 * keyed on its result instead (`{ result: diffID or null }`), after it ran.
 */
export type StepInputs = Record<string, unknown> | 'unknown';

/**
 * Keys of `steps` in order, chained from `parent`; stops before the first step whose inputs
 * are `unknown`. Pure: the same plan and input digests always give the same keys.
 */
export function keyChain(parent: Digest, steps: Step[], inputsOf: (step: Step, index: number) => StepInputs, stageTops: ReadonlyMap<number, Digest | undefined>): Digest[] {
  const keys: Digest[] = [];
  let prev = parent;
  for (const [i, step] of steps.entries()) {
    const inputs = inputsOf(step, i);
    if (inputs === 'unknown') break;
    prev = cacheKey(prev, keyedStep(step, stageTops), inputs);
    keys.push(prev);
  }
  return keys;
}

/** The key of a step that could only be keyed on its result: its layer's diffID, or null. */
export function resultKey(parent: Digest, step: Step, diffId: Digest | undefined, stageTops: ReadonlyMap<number, Digest | undefined>): Digest {
  return cacheKey(parent, keyedStep(step, stageTops), { result: diffId ?? null });
}
