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
  const { configJson, manifestOf } = imageFiles(state, createdAt(opts.sourceDateEpoch, opts.now), opts.sourceDateEpoch);
  const configBlob = await store.putBlob(configJson);
  const manifestBlob = await store.putBlob(JSON.stringify(manifestOf(configBlob)));
  await store.setTags(opts.tags, { mediaType: MEDIA_TYPE_MANIFEST, digest: manifestBlob.digest, size: manifestBlob.size });
  return { imageId: configBlob.digest, manifestDigest: manifestBlob.digest };
}

/**
 * The config JSON of `state` committed at `created`, and its manifest once the config's
 * digest is known. History rows get `created` (all of them SOURCE_DATE_EPOCH's when set) and
 * strata's comment where they have none; rows that have both keep them, so committing a
 * state read back from an image's config gives that config again.
 */
export function imageFiles(
  state: ImageState,
  created: string,
  sourceDateEpoch: number | undefined,
): { configJson: string; manifestOf: (config: { digest: Digest; size: number }) => ImageManifest } {
  const history = state.history.map((h) => ({
    ...h,
    created: sourceDateEpoch !== undefined ? created : (h.created ?? created),
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
  return {
    configJson: JSON.stringify(config),
    manifestOf: (c) => ({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_MANIFEST,
      config: { mediaType: MEDIA_TYPE_CONFIG, digest: c.digest, size: c.size },
      layers: state.layers.map(layerDescriptor),
    }),
  };
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
