// load: images from an archive into the store, as `docker load`. Reads docker-archive
// (manifest.json: docker ≤ 24's <id>/layer.tar and docker ≥ 25's blobs/sha256/, strata's own)
// and OCI image layouts in a tar (index.json, ref names as skopeo, podman and docker write
// them), plain or compressed. Everything in the archive is checked before anything is kept:
// blob digests and sizes, each layer's diff_id against the config, the config against its
// name. The archive is staged in tmp/ and the store changes only once all of it passed, so
// a truncated or forged archive leaves no tag, no layer and no blob behind.
// https://github.com/opencontainers/image-spec/blob/main/image-layout.md
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestStream, chainId as computeChainId, isDigest, sha256, type Digest } from '../digest.js';
import { EngineError, UserInputError } from '../errors.js';
import { extractTar } from '../fsutil/extract.js';
import {
  MEDIA_TYPE_CONFIG,
  MEDIA_TYPE_LAYER,
  MEDIA_TYPE_LAYER_GZIP,
  MEDIA_TYPE_LAYER_ZSTD,
  MEDIA_TYPE_MANIFEST,
  type Descriptor,
  type ImageConfigFile,
  type ImageManifest,
} from '../image/types.js';
import { listImages } from '../store/images.js';
import type { LayerMeta, Store } from '../store/store.js';
import { decompressed, type Compression } from './compression.js';
import { MAX_JSON, MAX_LAYERS, parseJson, readSpecs, type ImageSpec } from './specs.js';
import { stageArchive, type StagedFile } from './stage.js';

export interface LoadedImage {
  id: Digest;
  tags: string[];
}

export interface LoadResult {
  images: LoadedImage[];
  /** Tags that named another image before: docker reports them as renamed to "". */
  moved: { tag: string; previous: Digest }[];
}

/** A layer checked and unpacked in staging, waiting for the commit. */
interface StagedLayer {
  chain: Digest;
  parent?: Digest;
  diffId: Digest;
  /** Bytes of the uncompressed tar. */
  size: number;
  diff: string;
  blob: { file: string; digest: Digest; mediaType: string; size: number };
}

const MEDIA_TYPES: Partial<Record<Compression, string>> = { none: MEDIA_TYPE_LAYER, gzip: MEDIA_TYPE_LAYER_GZIP, zstd: MEDIA_TYPE_LAYER_ZSTD };

/** Loads every image in the archive read from `src`. Idempotent: loading twice changes nothing. */
export async function loadArchive(store: Store, src: Readable, progress: (line: string) => void = () => undefined): Promise<LoadResult> {
  const staging = await store.makeTempDir('load');
  try {
    const entries = path.join(staging, 'entries');
    await fs.mkdir(entries);
    const { stream } = await decompressed(src);
    const archive = await stageArchive(stream, entries);
    const specs = await readSpecs(archive);
    if (specs.length === 0) throw new UserInputError('ARCHIVE_INVALID', 'load: the archive names no image');

    const configs: { spec: ImageSpec; bytes: Buffer; id: Digest; diffIds: Digest[]; chain: Digest[] }[] = [];
    for (const spec of specs) {
      const bytes = await archive.readSmall(spec.config.name, MAX_JSON);
      if (!bytes) throw new UserInputError('ARCHIVE_INVALID', `load: the config ${spec.config.name} is not in the archive`);
      const id = sha256(bytes);
      if (spec.config.digest && spec.config.digest !== id) {
        throw new UserInputError('DIGEST_MISMATCH', `load: the config ${spec.config.name} hashes to ${id}, not ${spec.config.digest}`);
      }
      const config = parseJson<ImageConfigFile>(bytes, spec.config.name);
      const diffIds = config.rootfs?.diff_ids;
      if (!Array.isArray(diffIds) || !diffIds.every((d) => typeof d === 'string' && isDigest(d))) {
        throw new UserInputError('ARCHIVE_INVALID', `load: the config ${spec.config.name} has no valid rootfs.diff_ids`);
      }
      if (diffIds.length > MAX_LAYERS) throw new UserInputError('ARCHIVE_INVALID', `load: ${spec.config.name} has more than ${MAX_LAYERS} layers`);
      if (diffIds.length !== spec.layers.length) {
        throw new UserInputError('ARCHIVE_INVALID', `load: the image of ${spec.config.name} lists ${spec.layers.length} layers, its config ${diffIds.length}`);
      }
      const chain: Digest[] = [];
      for (const d of diffIds) chain.push(computeChainId(chain[chain.length - 1], d));
      configs.push({ spec, bytes, id, diffIds, chain });
    }

    // Check and unpack every layer the store lacks; nothing is committed yet.
    const staged = new Map<Digest, StagedLayer>();
    for (const { spec, diffIds, chain } of configs) {
      for (const [i, diffId] of diffIds.entries()) {
        const c = chain[i]!;
        if (staged.has(c) || (await store.hasLayer(c))) continue;
        const ref = spec.layers[i]!;
        const file = archive.resolve(ref.name);
        if (!file) {
          throw new UserInputError('LAYER_MISSING', `load: layer ${i + 1} (${diffId}) is neither in the archive (${ref.name}) nor in the store`);
        }
        progress(`Loading layer ${diffId.slice(7, 19)}`);
        staged.set(c, await unpackLayer(staging, staged.size, file, ref, diffId, chain[i - 1]));
      }
    }

    // Everything checked: commit layers (parents first), configs, manifests, then tags.
    for (const layer of staged.values()) {
      await store.putBlobFile(layer.blob.file, layer.blob.digest);
      const meta: Omit<LayerMeta, 'chainId'> = {
        diffId: layer.diffId,
        parent: layer.parent,
        size: layer.size,
        blob: { digest: layer.blob.digest, mediaType: layer.blob.mediaType, size: layer.blob.size },
      };
      await store.commitLayer(layer.diff, meta);
    }
    const before = await listImages(store);
    const result: LoadResult = { images: [], moved: [] };
    for (const { spec, bytes, id, chain } of configs) {
      await store.putBlob(bytes, id);
      const layers: Descriptor[] = [];
      for (const c of chain) {
        const meta = await store.readLayerMeta(c);
        layers.push(
          meta.blob ? { mediaType: meta.blob.mediaType, digest: meta.blob.digest, size: meta.blob.size } : { mediaType: MEDIA_TYPE_LAYER, digest: meta.diffId, size: meta.size },
        );
      }
      const manifest: ImageManifest = { schemaVersion: 2, mediaType: MEDIA_TYPE_MANIFEST, config: { mediaType: MEDIA_TYPE_CONFIG, digest: id, size: bytes.length }, layers };
      const m = await store.putBlob(JSON.stringify(manifest));
      for (const tag of spec.tags) {
        const previous = before.find((img) => img.tags.includes(tag));
        if (previous && previous.id !== id) result.moved.push({ tag, previous: previous.id });
      }
      await store.setTags(spec.tags, { mediaType: MEDIA_TYPE_MANIFEST, digest: m.digest, size: m.size });
      result.images.push({ id, tags: spec.tags });
    }
    return result;
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
}

/** Checks one layer file against its blob digest and diff_id, unpacking it into staging. */
async function unpackLayer(staging: string, n: number, file: StagedFile, ref: ImageSpec['layers'][number], diffId: Digest, parent: Digest | undefined): Promise<StagedLayer> {
  if (ref.digest && ref.digest !== file.digest) throw new UserInputError('DIGEST_MISMATCH', `load: ${ref.name} hashes to ${file.digest}, not ${ref.digest}`);
  if (ref.size !== undefined && ref.size !== file.size) throw new UserInputError('ARCHIVE_INVALID', `load: ${ref.name} has ${file.size} bytes, its descriptor says ${ref.size}`);
  const dir = path.join(staging, `layer-${n}`);
  const diff = path.join(dir, 'diff');
  await fs.mkdir(diff, { recursive: true, mode: 0o755 });
  await fs.chmod(diff, 0o755);
  const { compression, stream } = await decompressed(createReadStream(file.file));
  const hasher = new DigestStream();
  stream.on('error', (e) => hasher.destroy(e));
  try {
    await extractTar(stream.pipe(hasher), diff, { whiteouts: 'overlay' });
  } catch (err) {
    if (err instanceof EngineError || (err as NodeJS.ErrnoException).code !== undefined) throw err;
    throw new UserInputError('INVALID_TAR', `load: ${ref.name} is not a valid layer tar: ${(err as Error).message}`, { cause: err });
  }
  const actual = hasher.digest();
  if (actual !== diffId) throw new UserInputError('DIGEST_MISMATCH', `load: ${ref.name} unpacks to ${actual}, but the config's diff_id is ${diffId}`);
  let blob = { file: file.file, digest: file.digest, mediaType: MEDIA_TYPES[compression] ?? '', size: file.size };
  if (!MEDIA_TYPES[compression]) {
    // bzip2 and xz have no OCI media type: keep the uncompressed tar instead.
    const plain = path.join(dir, 'layer.tar');
    const h = new DigestStream();
    await pipeline((await decompressed(createReadStream(file.file))).stream, h, createWriteStream(plain, { flags: 'wx', mode: 0o644 }));
    blob = { file: plain, digest: h.digest(), mediaType: MEDIA_TYPE_LAYER, size: h.size };
  }
  return { chain: computeChainId(parent, diffId), parent, diffId, size: hasher.size, diff, blob };
}
