// Image data as the OCI image spec and docker write it.
// https://github.com/opencontainers/image-spec/blob/main/config.md
import type { Digest } from '../digest.js';

export const MEDIA_TYPE_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MEDIA_TYPE_INDEX = 'application/vnd.oci.image.index.v1+json';
export const MEDIA_TYPE_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const MEDIA_TYPE_LAYER = 'application/vnd.oci.image.layer.v1.tar';
export const MEDIA_TYPE_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const MEDIA_TYPE_LAYER_ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
/** strata's own index.json annotation: when a tag was last set (docker's LastTagTime). */
export const ANNOTATION_TAG_TIME = 'dev.strata.tag.time';
/**
 * strata's own index.json annotation on an untagged entry: the image is one a build made after
 * a step (docker's intermediate images), listed only by `images -a` and removed by `image
 * prune` once no other image builds on it. Committing the image as a build's result drops it.
 */
export const ANNOTATION_INTERMEDIATE = 'dev.strata.intermediate';

export interface HealthConfig {
  Test?: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

/** The `config` section of an image config, with docker's capitalized keys and extensions. */
export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  ArgsEscaped?: boolean;
  Shell?: string[];
  Healthcheck?: HealthConfig;
  OnBuild?: string[] | null;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface ImageConfigFile {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  config: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history: HistoryEntry[];
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string; variant?: string };
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
}

/**
 * One layer of an image. `diffId` is the digest of the uncompressed tar (what the config
 * lists); `digest`/`blobSize`/`mediaType` describe the blob as distributed (compressed or
 * not); `chainId` names the unpacked snapshot in the store.
 */
export interface LayerRef {
  diffId: Digest;
  chainId: Digest;
  /** Bytes of the uncompressed tar. */
  size: number;
  digest: Digest;
  mediaType: string;
  blobSize: number;
}

/** The state a build carries from step to step: no layer bytes, only references. */
export interface ImageState {
  config: ContainerConfig;
  layers: LayerRef[];
  history: HistoryEntry[];
  architecture: string;
  os: string;
}

/** An image in the store, as found by a tag or ID. */
export interface StoredImage {
  manifestDigest: Digest;
  manifest: ImageManifest;
  /** Image ID: the digest of the config JSON. */
  configDigest: Digest;
  config: ImageConfigFile;
  layers: LayerRef[];
}
