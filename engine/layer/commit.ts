// Commit: a step's upperdir becomes a layer. The tar is streamed into sha256 only (diff_id);
// the directory itself is renamed into the store as the snapshot, never copied.
import { promises as fs } from 'node:fs';
import type { Digest } from '../digest.js';
import { createdAt } from '../image/commit.js';
import { MEDIA_TYPE_LAYER, type HistoryEntry, type LayerRef } from '../image/types.js';
import type { Store } from '../store/store.js';
import { hashLayerTar } from './tar.js';

/** Commits `upper` on top of `parent` (a chainID, or undefined for the first layer). */
export async function commitSnapshot(store: Store, upper: string, parent: Digest | undefined, sourceDateEpoch?: number): Promise<LayerRef> {
  const { diffId, size } = await hashLayerTar(upper, { sourceDateEpoch });
  const chainId = await store.commitLayer(upper, { diffId, parent, size, sourceDateEpoch });
  return { diffId, chainId, size, digest: diffId, mediaType: MEDIA_TYPE_LAYER, blobSize: size };
}

/** What a filesystem step gives the build: its layer (none when nothing changed) and history. */
export interface StepResult {
  layer?: LayerRef;
  history: HistoryEntry;
}

/**
 * Commits a step's upperdir. An empty upperdir adds no layer and an `empty_layer` history
 * entry, as docker's commit does for a step that changed nothing.
 */
export async function commitStep(store: Store, upper: string, parent: Digest | undefined, history: HistoryEntry, sourceDateEpoch?: number): Promise<StepResult> {
  const created = createdAt(sourceDateEpoch);
  if ((await fs.readdir(upper)).length === 0) return { history: { ...history, created, empty_layer: true } };
  const layer = await commitSnapshot(store, upper, parent, sourceDateEpoch);
  return { layer, history: { ...history, created } };
}
