// Commit: a build's final state becomes a config blob, a manifest blob and tags.
import type { Digest } from '../digest.js';
import {
  MEDIA_TYPE_CONFIG,
  MEDIA_TYPE_LAYER,
  MEDIA_TYPE_MANIFEST,
  type Descriptor,
  type HistoryEntry,
  type ImageConfigFile,
  type ImageManifest,
  type ImageState,
  type LayerRef,
} from './types.js';

/** What a commit writes to: the store's blobs and tags (engine/store satisfies it). */
export interface ImageSink {
  putBlob(data: string): Promise<{ digest: Digest; size: number }>;
  setTags(tags: string[], manifest: Descriptor): Promise<void>;
}

export interface CommitOptions {
  tags: string[];
  /** Seconds since the epoch; every `created` becomes this time, for reproducible IDs. */
  sourceDateEpoch?: number;
  /** The time to record when no SOURCE_DATE_EPOCH is set (defaults to now). */
  now?: Date;
}

/** Writes config and manifest (idempotent: same state, same digests) and points the tags at it. */
export async function commitImage(store: ImageSink, state: ImageState, opts: CommitOptions): Promise<{ imageId: Digest; manifestDigest: Digest }> {
  const created = createdAt(opts.sourceDateEpoch, opts.now);
  const history = state.history.map((h) => ({
    ...h,
    created: opts.sourceDateEpoch !== undefined ? created : (h.created ?? created),
    comment: h.comment ?? 'strata',
  }));
  const author = authorOf(state.history);
  const config: ImageConfigFile = {
    created,
    ...(author !== undefined ? { author } : {}),
    architecture: state.architecture,
    os: state.os,
    config: state.config,
    rootfs: { type: 'layers', diff_ids: state.layers.map((l) => l.diffId) },
    history,
  };
  const configBlob = await store.putBlob(JSON.stringify(config));
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_MANIFEST,
    config: { mediaType: MEDIA_TYPE_CONFIG, digest: configBlob.digest, size: configBlob.size },
    layers: state.layers.map(layerDescriptor),
  };
  const manifestBlob = await store.putBlob(JSON.stringify(manifest));
  await store.setTags(opts.tags, { mediaType: MEDIA_TYPE_MANIFEST, digest: manifestBlob.digest, size: manifestBlob.size });
  return { imageId: configBlob.digest, manifestDigest: manifestBlob.digest };
}

/** The build state an image in the store starts a stage with. */
export function stateOf(config: ImageConfigFile, layers: ImageState['layers']): ImageState {
  return {
    config: config.config ?? {},
    layers,
    history: config.history ?? [],
    architecture: config.architecture,
    os: config.os,
  };
}

/**
 * MAINTAINER sets the image's author (outside `config`, so the planner records it only as a
 * history row): the last one wins, a base's included, as in BuildKit.
 */
function authorOf(history: HistoryEntry[]): string | undefined {
  for (let i = history.length - 1; i >= 0; i--) {
    // strata's own rows, and the classic builder's `/bin/sh -c #(nop)  MAINTAINER x`.
    const m = /^(?:.* #\(nop\)\s+)?MAINTAINER (.*)$/s.exec(history[i]!.created_by ?? '');
    if (m) return m[1];
  }
  return undefined;
}

/** The descriptor a manifest lists for a layer the store holds. */
export function layerDescriptor(layer: LayerRef): Descriptor {
  return { mediaType: layer.mediaType || MEDIA_TYPE_LAYER, digest: layer.digest, size: layer.blobSize };
}

/** A history/config `created` time: SOURCE_DATE_EPOCH when set (reproducible), else `now`. */
export function createdAt(sourceDateEpoch: number | undefined, now: Date = new Date()): string {
  return sourceDateEpoch !== undefined ? new Date(sourceDateEpoch * 1000).toISOString() : now.toISOString();
}
