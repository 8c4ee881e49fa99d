// The shapes activities/validate.ts checks workflow inputs against: typed readers that throw
// InputRefused naming the field (`refuse step.mounts[0].target: …`), digests present in the
// store, plan steps and image layers as the planner and the store make them.
import { isDigest, type Digest } from '../engine/digest.js';
import { UserInputError } from '../engine/errors.js';
import { normalizeReference } from '../engine/image/reference.js';
import { MEDIA_TYPE_LAYER } from '../engine/image/types.js';
import { MAX_PLAN_BYTES, MAX_STAGES } from '../engine/dockerfile/limits.js';
import { checkSymbolicMode } from '../engine/plan/mode.js';
import { knownLayerBlob } from '../engine/store/layerBlobs.js';
import type { Store } from '../engine/store/store.js';

/** The error every check throws: `refuse FIELD: WHY`. */
export class InputRefused extends UserInputError {
  constructor(field: string, detail: string) {
    super('INPUT_REFUSED', `refuse ${field}: ${detail}`);
  }
}

// ---- shapes ------------------------------------------------------------------------------

const DIGEST = /^sha256:[0-9a-f]{64}$/;
/** Past any plausible epoch a date can hold (year 9999). */
const MAX_EPOCH = 253_402_300_799;
const MAX_ID = 0xfffffffe;

export function obj(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InputRefused(field, 'not an object');
  return v as Record<string, unknown>;
}

export function str(v: unknown, field: string, opts: { max?: number; absolute?: boolean; noSlash?: boolean } = {}): string {
  if (typeof v !== 'string') throw new InputRefused(field, 'not a string');
  const max = opts.max ?? 4096;
  if (v.length > max) throw new InputRefused(field, `longer than ${max} characters`);
  if (v.includes('\0')) throw new InputRefused(field, 'holds a NUL character');
  if (opts.absolute && !v.startsWith('/')) throw new InputRefused(field, `${JSON.stringify(v)} is not an absolute path`);
  if (opts.noSlash && (v === '' || v === '.' || v === '..' || v.includes('/'))) throw new InputRefused(field, `${JSON.stringify(v)} is not a file name`);
  return v;
}

export function optStr(v: unknown, field: string, opts?: Parameters<typeof str>[2]): string | undefined {
  return v === undefined ? undefined : str(v, field, opts);
}

export function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw new InputRefused(field, `${JSON.stringify(v)} is not a whole number from ${min} to ${max}`);
  return v;
}

export function optInt(v: unknown, field: string, min: number, max: number): number | undefined {
  return v === undefined ? undefined : int(v, field, min, max);
}

export function optBool(v: unknown, field: string): void {
  if (v !== undefined && typeof v !== 'boolean') throw new InputRefused(field, 'not true or false');
}

export function arr(v: unknown, field: string, max: number): unknown[] {
  if (!Array.isArray(v)) throw new InputRefused(field, 'not a list');
  if (v.length > max) throw new InputRefused(field, `more than ${max} items`);
  return v;
}

export function strings(v: unknown, field: string, max: number, opts?: Parameters<typeof str>[2]): string[] {
  return arr(v, field, max).map((s, i) => str(s, `${field}[${i}]`, opts));
}

export function oneOf<T extends string>(v: unknown, field: string, values: readonly T[]): T {
  if (!values.includes(v as T)) throw new InputRefused(field, `${JSON.stringify(v)} is not one of ${values.join(', ')}`);
  return v as T;
}

export function digest(v: unknown, field: string): Digest {
  if (typeof v !== 'string' || !DIGEST.test(v)) throw new InputRefused(field, `${JSON.stringify(typeof v === 'string' ? v.slice(0, 80) : v)} is not sha256:<64 hex digits>`);
  return v as Digest;
}

export async function blob(store: Store, v: unknown, field: string): Promise<Digest> {
  const d = digest(v, field);
  if (!(await store.hasBlob(d))) throw new InputRefused(field, `${d} is not in this worker's store`);
  return d;
}

export async function layer(store: Store, v: unknown, field: string): Promise<Digest> {
  const d = digest(v, field);
  if (!(await store.hasLayer(d))) throw new InputRefused(field, `layer ${d} is not in this worker's store`);
  return d;
}

export const epoch = (v: unknown, field: string) => optInt(v, field, 0, MAX_EPOCH);

/** A tag as the store keeps it: `name:tag`, normalized (the client normalizes every -t). */
export function tag(v: unknown, field: string): string {
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

export function stepCommon(s: Record<string, unknown>, field: string, kind: string): void {
  if (s.kind !== kind) throw new InputRefused(`${field}.kind`, `${JSON.stringify(s.kind)} is not ${kind}`);
  int(s.number, `${field}.number`, 1, 1_000_000);
  // A config step --label adds has no Dockerfile line: 0.
  int(s.line, `${field}.line`, kind === 'config' ? 0 : 1, 10_000_000);
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

export async function runStep(store: Store, v: unknown, field: string): Promise<void> {
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

export function copyStep(v: unknown, field: string): void {
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

/**
 * A layer described by another blob than the one it is stored from: one the store verified as
 * this layer's (unpacked to its diff_id: a pulled or loaded image's form of a layer the store
 * already had), or one the store does not hold at all (a pulled base whose layers the store
 * had under another blob, so the registry's was never fetched). A blob the store holds for
 * anything else (another build's context) is refused: save and push must not hand it out.
 */
async function isOtherBlobOf(store: Store, diffId: Digest, l: Record<string, unknown>): Promise<boolean> {
  if (l.diffId !== diffId || typeof l.digest !== 'string' || !isDigest(l.digest)) return false;
  if (typeof l.blobSize !== 'number' || typeof l.mediaType !== 'string' || !/^application\/vnd\.[a-z0-9.+-]+$/.test(l.mediaType)) return false;
  if (!(await store.hasBlob(l.digest))) return true;
  const known = await knownLayerBlob(store.root, diffId, l.digest);
  return known !== undefined && known.size === l.blobSize && known.mediaType === l.mediaType;
}

/** Each layer is in the store, chained on the one before, and described as the store has it. */
export async function imageLayers(store: Store, v: unknown, field: string): Promise<void> {
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
    const mismatch = Object.entries(expected).find(([k, want]) => l[k] !== want);
    if (mismatch && !(await isOtherBlobOf(store, meta.diffId, l))) {
      const [k] = mismatch;
      throw new InputRefused(`${f}.${k}`, `${JSON.stringify(l[k])} is not what the store has for layer ${chain}`);
    }
    parent = chain;
  }
}
