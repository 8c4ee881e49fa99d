// The instruction cache's look-up: the keys of a run of a stage's steps (one activity call for
// all of them), and the entries that serve them, up to the first step without one. A fully
// cached stage costs one call, not one per step.
//
// What a step's key covers (key.ts makes it): the parent key, the step after expansion, and
// - COPY/ADD from the context: the content checksum of its sources (checksum.ts), memoized in
//   the store per (context digest, sources, excludes), so an unchanged context is not hashed
//   again; --from a stage: that stage's top layer; --from an image: its pinned digest (in the step).
// - ADD of a URL with --checksum: the URL and the checksum (in the step). Without one the file's
//   content cannot be known before it is fetched, so the step always runs (docker and BuildKit
//   ask the server again instead) and is keyed on the layer it made: the steps after it hit
//   when the download gave the same bytes.
// - ADD of git: the commit the ref resolves to now (git ls-remote); a ref that does not resolve
//   is keyed on its result like a URL without --checksum.
// - RUN: its network, and for each `--mount` bind from the context the checksum of its source;
//   from a stage or image as COPY --from. Cache, tmpfs and secret mounts do not count: a
//   secret's value never enters a key, not even hashed (as in BuildKit): a changed secret
//   does not make a step run again (use --no-cache or --no-cache-filter).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { canonicalJson, digestHex, isDigest, sha256, type Digest } from '../digest.js';
import { writeFileAtomic } from '../fsutil/atomic.js';
import { stateOf } from '../image/commit.js';
import { hostPlatform } from '../image/platform.js';
import type { HistoryEntry, ImageState, LayerRef } from '../image/types.js';
import { classifyAddSource, type AddSource } from '../plan/addSource.js';
import type { BaseSpec, CopyStep, RunStep, Step } from '../plan/types.js';
import type { NetworkMode } from '../runtime/network.js';
import type { Store } from '../store/store.js';
import { gitRoute } from '../steps/add.js';
import { contextChecksum, type SourcesSpec } from './checksum.js';
import { readCacheEntry, usableCacheEntry, type CacheEntry } from './entries.js';
import { baseKey, keyChain, resultKey, type StepInputs } from './key.js';

/** Where a look-up's chain starts. */
export type CacheStart =
  /** A stage's base: the look-up resolves it and returns its state. */
  | { kind: 'base'; base: BaseSpec & { kind: 'image' | 'scratch' } }
  /** The key of the step before the first (or a base stage's last key). */
  | { kind: 'key'; key: Digest }
  /** The first step ran already and is keyed on its result (its layer's diffID, or none). */
  | { kind: 'result'; parentKey: Digest; diffId?: Digest };

export interface LookupSpec {
  start: CacheStart;
  /** chainID of the state's top layer before the first step; ignored for a `base` start. */
  parentTop?: Digest;
  steps: Step[];
  contextDigest: Digest;
  /** The unpacked context (unpacked when first needed: a memoized checksum needs none). */
  contextDir: () => Promise<string>;
  /** Top chainID of every stage the steps read (undefined: the stage has no layer). */
  stageTops: Map<number, Digest | undefined>;
  sourceDateEpoch?: number;
  /** The build's network, for RUN steps that name none. */
  network: NetworkMode;
  /** False: keys only (--no-cache, or an earlier step of the stage missed). */
  useCache: boolean;
  /** file:// git sources may be resolved (the worker allows them). */
  allowFileGit?: boolean;
  /** Called with a layer before the look-up checks it is stored: the GC must keep it from then on. */
  hold: (layers: (Digest | undefined)[]) => Promise<void>;
  /**
   * On a local miss: the entry of `key` for a state whose top layer is `parentTop` from
   * elsewhere (the remote store, a build's `--cache-from`: engine/remote/), its layer stored
   * and held; undefined when there is none.
   */
  fetchEntry?: (key: Digest, parentTop: Digest | undefined) => Promise<CacheEntry | undefined>;
  /** Told the keys this store has no entry for before the look-up asks fetchEntry one by one: it may start asking for all. */
  prefetchEntries?: (keys: Digest[]) => void;
}

export interface CachedStep {
  layer?: LayerRef;
  history: HistoryEntry;
}

export interface LookupResult {
  /** The base's state, for a `base` start. */
  base?: ImageState;
  /**
   * One per step from the first, in order. Shorter than the steps when the next one can only be
   * keyed on its result. `hit` is set on the filesystem steps up to the first miss.
   */
  steps: { key: Digest; hit?: CachedStep }[];
}

/** Keys the steps and finds the entries that serve them. */
export async function lookupSteps(store: Store, spec: LookupSpec): Promise<LookupResult> {
  let base: ImageState | undefined;
  let parentTop = spec.parentTop;
  let root: Digest;
  let steps = spec.steps;
  const out: LookupResult['steps'] = [];
  if (spec.start.kind === 'base') {
    const b = spec.start.base;
    root = baseKey(b, hostPlatform(), spec.sourceDateEpoch);
    if (b.kind === 'image') {
      const img = await store.loadImage(b.manifestDigest);
      base = stateOf(img.config, img.layers);
    } else base = { ...hostPlatform(), config: {}, layers: [], history: [] };
    parentTop = base.layers[base.layers.length - 1]?.chainId;
    await spec.hold([parentTop]);
  } else if (spec.start.kind === 'key') {
    root = spec.start.key;
  } else {
    const [ran, ...rest] = steps;
    if (!ran) throw new Error('cache look-up: a result start needs the step that ran');
    root = resultKey(spec.start.parentKey, ran, spec.start.diffId, spec.stageTops);
    out.push({ key: root });
    steps = rest;
  }

  const inputs: StepInputs[] = [];
  for (const step of steps) {
    const i = await stepInputs(store, spec, step);
    inputs.push(i);
    if (i === 'unknown') break;
  }
  const keys = keyChain(root, steps, (_, i) => inputs[i]!, spec.stageTops);

  let hitting = spec.useCache;
  let top = parentTop;
  if (hitting && spec.prefetchEntries) {
    const absent: Digest[] = [];
    for (const [i, key] of keys.entries()) {
      const kind = steps[i]!.kind;
      if (kind !== 'from' && kind !== 'config' && !(await readCacheEntry(store, key))) absent.push(key);
    }
    if (absent.length > 0) spec.prefetchEntries(absent);
  }
  for (const [i, key] of keys.entries()) {
    const step = steps[i]!;
    if (!hitting || step.kind === 'from' || step.kind === 'config') {
      out.push({ key });
      continue;
    }
    let entry = await usableCacheEntry(store, key, top, spec.hold);
    if (!entry && spec.fetchEntry) entry = await spec.fetchEntry(key, top);
    if (!entry) {
      hitting = false;
      out.push({ key });
      continue;
    }
    out.push({ key, hit: { ...(entry.layer ? { layer: entry.layer } : {}), history: entry.history } });
    if (entry.layer) top = entry.layer.chainId;
  }
  return { ...(base ? { base } : {}), steps: out };
}

/** What a step's key takes besides the step: digests of the files and commits it reads. */
async function stepInputs(store: Store, spec: LookupSpec, step: Step): Promise<StepInputs> {
  if (step.kind === 'copy') return copyInputs(store, spec, step);
  if (step.kind === 'run') return runInputs(store, spec, step);
  return {};
}

async function copyInputs(store: Store, spec: LookupSpec, step: CopyStep): Promise<StepInputs> {
  if (step.from) return {}; // a stage's top or an image's digest: in the keyed step
  const adds = step.instruction === 'ADD' ? step.sources.map(classifyAddSource) : [];
  const git: string[] = [];
  for (const a of adds) {
    if (a?.kind === 'http' && step.checksum === undefined) return 'unknown';
    if (a?.kind === 'git') {
      const commit = spec.network === 'none' || (a.local && !spec.allowFileGit) ? undefined : await resolveGitCommit(a);
      if (!commit) return 'unknown';
      git.push(commit);
    }
  }
  const local = step.instruction === 'COPY' || adds.some((a) => a?.kind === 'local');
  const sources = local ? await memoizedChecksum(store, spec, { sources: step.sources, excludes: step.excludes, instruction: step.instruction }) : null;
  return { sources, ...(git.length > 0 ? { git } : {}) };
}

async function runInputs(store: Store, spec: LookupSpec, step: RunStep): Promise<StepInputs> {
  const mounts: Record<string, Digest> = {};
  for (const [i, m] of (step.mounts ?? []).entries()) {
    if (m.type === 'bind' && m.from.kind === 'context') {
      mounts[String(i)] = await memoizedChecksum(store, spec, { sources: [m.source], instruction: 'COPY' });
    }
  }
  return { network: step.network ?? spec.network, mounts };
}

/**
 * A context is immutable under its digest, so a checksum of its sources is computed once and
 * kept in cache/sums/<context hex>/ (removed with the context's blob by the GC).
 */
async function memoizedChecksum(store: Store, spec: LookupSpec, sources: SourcesSpec): Promise<Digest> {
  const file = path.join(store.root, 'cache', 'sums', digestHex(spec.contextDigest), digestHex(sha256(canonicalJson(sources))));
  const memo = (await fs.readFile(file, 'utf8').catch(() => '')).trim();
  if (isDigest(memo)) return memo;
  const sum = await contextChecksum(await spec.contextDir(), sources);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, sum);
  return sum;
}

/** How long a remote has to name a ref's commit before the step is keyed on its result. */
const LS_REMOTE_TIMEOUT_MS = 30_000;

/** The commit `source`'s ref names now, or undefined when git cannot say. */
export async function resolveGitCommit(source: AddSource & { kind: 'git' }): Promise<string | undefined> {
  const ref = source.ref ?? 'HEAD';
  if (/^[0-9a-f]{40}$|^[0-9a-f]{64}$/.test(ref)) return ref;
  // The planner refused these; a plan from elsewhere must not turn a ref into a git option.
  if (ref.startsWith('-') || source.remote.startsWith('-')) return undefined;
  // Reached only where the clone may go. The look-up does not know the build's entitlements:
  // a remote on this host is unresolved even for a network.host build, whose ADD then runs
  // every time (the clone itself is checked with them).
  const route = await gitRoute(source, false).catch(() => undefined);
  if (!route) return undefined;
  const r = await execa('git', [...route.config, 'ls-remote', '--', route.remote, ref], {
    reject: false,
    timeout: LS_REMOTE_TIMEOUT_MS,
    env: { GIT_TERMINAL_PROMPT: '0', ...route.env },
    stdin: 'ignore',
  });
  if (r.exitCode !== 0) return undefined;
  const lines = String(r.stdout)
    .split('\n')
    .map((l) => l.split('\t'))
    .filter((f) => f.length === 2 && /^[0-9a-f]{40,64}$/.test(f[0]!));
  const names = ref === 'HEAD' ? ['HEAD'] : [ref, `refs/heads/${ref}`, `refs/tags/${ref}`];
  for (const name of names) {
    // An annotated tag: the commit it points to (`^{}`), which is what a checkout gives.
    const peeled = lines.find((f) => f[1] === `${name}^{}`);
    const exact = lines.find((f) => f[1] === name);
    if (peeled || exact) return (peeled ?? exact)![0];
  }
  return undefined;
}
