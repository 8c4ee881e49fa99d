// Intermediate images: the image after each step of a build, as docker's classic builder keeps
// one per step. Only a config and a manifest blob each (the layers are the steps' own), found
// by ID like any image, hidden from `images` without -a (ANNOTATION_INTERMEDIATE).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { canonicalJson, digestHex, sha256, type Digest } from '../digest.js';
import { writeFileAtomic } from '../fsutil/atomic.js';
import { createdAt, imageFiles, stateOf } from '../image/commit.js';
import type { Platform } from '../image/platform.js';
import { ANNOTATION_INTERMEDIATE, MEDIA_TYPE_MANIFEST, type ContainerConfig, type Descriptor, type HistoryEntry, type ImageState, type LayerRef } from '../image/types.js';
import type { Store } from './store.js';

/** One change a step made to the image. */
export interface StepChange {
  /** Fields of the container config set (FROM's default PATH, ENV, WORKDIR, …). */
  config?: Partial<ContainerConfig>;
  history?: HistoryEntry;
  layer?: LayerRef;
}

export interface StepImagesSpec {
  /** The image before the first step: one in the store, or nothing (scratch) on a platform. */
  parent: { manifestDigest: Digest } | { platform: Platform };
  /** Per step, in order, the changes it made: each step's image builds on the one before. */
  steps: StepChange[][];
  /**
   * Per step: its changes came from the instruction cache. Its image then takes the `created`
   * time of the image an earlier build made for the same changes on the same parent, so a
   * cached rebuild ends with the same image ID, as docker's classic builder's does.
   */
  cached?: boolean[];
  sourceDateEpoch?: number;
}

/**
 * Where `created` times of step images are also kept when machines share no store (the remote
 * store, engine/remote/): asked when this store has no record, told of each new one.
 */
export interface MadeRecords {
  madeBefore(sameStep: Digest): Promise<string | undefined>;
  recordMade(sameStep: Digest, created: string): Promise<void>;
}

export interface StepImage {
  imageId: Digest;
  manifestDigest: Digest;
}

/**
 * Writes the image after each of `spec.steps` (a config and a manifest blob each) and records
 * them in index.json, in one update, as intermediate images (an image the index has already
 * keeps its entry). Idempotent for a given `now`; new history rows and `created` get `now`
 * (or SOURCE_DATE_EPOCH); the parent's rows are kept as they are, so the image a build ends
 * with is the one its last step wrote.
 *
 * The blobs are not fsynced (a power loss may lose them; index.json, which names them, is):
 * the commit that makes one a build's result syncs it (Store.syncBlob). An fsync per blob
 * measured 1–10 ms on this machine's disk, depending on load.
 */
export async function writeStepImages(store: Store, spec: StepImagesSpec, now: Date = new Date(), shared?: MadeRecords): Promise<StepImage[]> {
  let state: ImageState;
  if ('manifestDigest' in spec.parent) {
    const parent = await store.loadImage(spec.parent.manifestDigest);
    state = stateOf(parent.config, parent.layers);
  } else {
    state = { architecture: spec.parent.platform.architecture, os: spec.parent.platform.os, config: {}, layers: [], history: [] };
  }
  const fresh = createdAt(spec.sourceDateEpoch, now);
  // SOURCE_DATE_EPOCH makes every time the same already.
  const remember = spec.sourceDateEpoch === undefined;
  let parentId =
    'manifestDigest' in spec.parent ? (await store.loadImage(spec.parent.manifestDigest)).configDigest : `scratch ${spec.parent.platform.os}/${spec.parent.platform.architecture}`;
  const made: StepImage[] = [];
  const entries: Descriptor[] = [];
  for (const [n, changes] of spec.steps.entries()) {
    const sameStep = sha256(canonicalJson([parentId, changes]));
    let created = (remember && spec.cached?.[n] && (await madeBefore(store, sameStep))) || fresh;
    if (created === fresh && remember && spec.cached?.[n] && shared) {
      const theirs = await shared.madeBefore(sameStep);
      if (theirs && !Number.isNaN(Date.parse(theirs))) {
        created = theirs;
        await recordMade(store, sameStep, theirs);
      }
    }
    for (const c of changes) state = applyChange(state, c, created);
    const { configJson, manifestOf } = imageFiles(state, created, spec.sourceDateEpoch);
    const config = await store.putBlob(configJson, undefined, { sync: false });
    const manifest = await store.putBlob(JSON.stringify(manifestOf(config)), undefined, { sync: false });
    made.push({ imageId: config.digest, manifestDigest: manifest.digest });
    if (remember && created === fresh) {
      await recordMade(store, sameStep, created);
      await shared?.recordMade(sameStep, created);
    }
    parentId = config.digest;
    entries.push({ mediaType: MEDIA_TYPE_MANIFEST, digest: manifest.digest, size: manifest.size, annotations: { [ANNOTATION_INTERMEDIATE]: 'true' } });
  }
  await store.updateIndex((index) => {
    const known = new Set(index.manifests.map((d) => d.digest));
    for (const e of entries) {
      if (known.has(e.digest)) continue;
      index.manifests.push(e);
      known.add(e.digest);
    }
  });
  return made;
}

/** Where the time an image was made for a step (its parent and changes) is kept: cache/images/. */
function madePath(store: Store, sameStep: Digest): string {
  return path.join(store.root, 'cache', 'images', `${digestHex(sameStep)}.json`);
}

async function madeBefore(store: Store, sameStep: Digest): Promise<string | undefined> {
  try {
    const file = madePath(store, sameStep);
    const r = JSON.parse(await fs.readFile(file, 'utf8')) as { created?: unknown };
    if (typeof r.created !== 'string' || Number.isNaN(Date.parse(r.created))) return undefined;
    // Its last use: the GC keeps the records kept cache entries use (engine/cache/gc.ts).
    const now = new Date();
    await fs.utimes(file, now, now).catch(() => undefined);
    return r.created;
  } catch {
    return undefined;
  }
}

/** A hint, not fsynced: lost, the next cached rebuild makes a new image (as --no-cache would). */
async function recordMade(store: Store, sameStep: Digest, created: string): Promise<void> {
  const file = madePath(store, sameStep);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, JSON.stringify({ created }), 0o644, { sync: false }).catch(() => undefined);
}

function applyChange(state: ImageState, c: StepChange, created: string): ImageState {
  return {
    ...state,
    config: c.config ? { ...state.config, ...c.config } : state.config,
    history: c.history ? [...state.history, { ...c.history, created: c.history.created ?? created }] : state.history,
    layers: c.layer ? [...state.layers, c.layer] : state.layers,
  };
}
