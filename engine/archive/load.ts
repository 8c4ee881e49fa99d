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
import { DigestStream, asDigest, chainId as computeChainId, isDigest, sha256, type Digest } from '../digest.js';
import { EngineError, UserInputError } from '../errors.js';
import { extractTar } from '../fsutil/extract.js';
import { hostPlatform } from '../image/platform.js';
import { normalizeReference } from '../image/reference.js';
import {
  ANNOTATION_REF_NAME,
  MEDIA_TYPE_CONFIG,
  MEDIA_TYPE_LAYER,
  MEDIA_TYPE_LAYER_GZIP,
  MEDIA_TYPE_LAYER_ZSTD,
  MEDIA_TYPE_MANIFEST,
  type Descriptor,
  type ImageConfigFile,
  type ImageIndex,
  type ImageManifest,
} from '../image/types.js';
import { listImages } from '../store/images.js';
import type { LayerMeta, Store } from '../store/store.js';
import { decompressed, type Compression } from './compression.js';
import { stageArchive, type StagedArchive, type StagedFile } from './stage.js';

/** Bounds on what an archive can make load read into memory or walk. */
const MAX_JSON = 8 << 20;
const MAX_IMAGES = 1000;
const MAX_LAYERS = 500;
const MAX_INDEX_DEPTH = 4;

export interface LoadedImage {
  id: Digest;
  tags: string[];
}

export interface LoadResult {
  images: LoadedImage[];
  /** Tags that named another image before: docker reports them as renamed to "". */
  moved: { tag: string; previous: Digest }[];
}

/** One image as the archive describes it, not yet checked. */
interface ImageSpec {
  /** Where the config is and, when the archive says, its digest. */
  config: { name: string; digest?: Digest };
  layers: { name: string; digest?: Digest; size?: number }[];
  tags: string[];
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

    const configs: { spec: ImageSpec; bytes: Buffer; id: Digest; chain: Digest[] }[] = [];
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
      configs.push({ spec, bytes, id, chain });
    }

    // Check and unpack every layer the store lacks; nothing is committed yet.
    const staged = new Map<Digest, StagedLayer>();
    for (const { spec, bytes, chain } of configs) {
      const diffIds = (JSON.parse(bytes.toString('utf8')) as ImageConfigFile).rootfs.diff_ids;
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
        layers.push(meta.blob ? { mediaType: meta.blob.mediaType, digest: meta.blob.digest, size: meta.blob.size } : { mediaType: MEDIA_TYPE_LAYER, digest: meta.diffId, size: meta.size });
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
async function unpackLayer(
  staging: string,
  n: number,
  file: StagedFile,
  ref: ImageSpec['layers'][number],
  diffId: Digest,
  parent: Digest | undefined,
): Promise<StagedLayer> {
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

function parseJson<T>(bytes: Buffer, name: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (err) {
    throw new UserInputError('ARCHIVE_INVALID', `load: ${name} is not valid JSON: ${(err as Error).message}`);
  }
}

/** The images the archive describes: from docker's manifest.json, else from the OCI index.json. */
async function readSpecs(archive: StagedArchive): Promise<ImageSpec[]> {
  const manifestJson = await archive.readSmall('manifest.json', MAX_JSON);
  if (manifestJson) return dockerSpecs(parseJson<unknown>(manifestJson, 'manifest.json'));
  const indexJson = await archive.readSmall('index.json', MAX_JSON);
  if (indexJson) return ociSpecs(archive, parseJson<ImageIndex>(indexJson, 'index.json'));
  if (archive.has('repositories')) {
    throw new UserInputError('ARCHIVE_UNSUPPORTED', 'load: a docker archive from before docker 1.10 (repositories, no manifest.json) is not supported');
  }
  throw new UserInputError('ARCHIVE_INVALID', 'load: not an image archive: no manifest.json or index.json at its root (a root filesystem tar goes in with strata import)');
}

function dockerSpecs(raw: unknown): ImageSpec[] {
  if (!Array.isArray(raw)) throw new UserInputError('ARCHIVE_INVALID', 'load: manifest.json is not a list of images');
  if (raw.length > MAX_IMAGES) throw new UserInputError('ARCHIVE_INVALID', `load: manifest.json lists more than ${MAX_IMAGES} images`);
  return raw.map((item: unknown, i) => {
    const m = item as { Config?: unknown; RepoTags?: unknown; Layers?: unknown };
    if (typeof m?.Config !== 'string' || !Array.isArray(m.Layers) || !m.Layers.every((l) => typeof l === 'string')) {
      throw new UserInputError('ARCHIVE_INVALID', `load: manifest.json entry ${i + 1} needs Config and Layers`);
    }
    const tags = Array.isArray(m.RepoTags) ? m.RepoTags.filter((t): t is string => typeof t === 'string').map(tagOf) : [];
    return {
      config: { name: m.Config, digest: digestInName(m.Config) },
      layers: (m.Layers as string[]).map((name) => ({ name, digest: digestInName(name) })),
      tags,
    };
  });
}

/** A digest an archive path spells: `blobs/sha256/<hex>`, or docker ≤ 24's `<hex>.json` config. */
function digestInName(name: string): Digest | undefined {
  const m = /(?:^|\/)blobs\/sha256\/([0-9a-f]{64})$/.exec(name) ?? /^([0-9a-f]{64})\.json$/.exec(name);
  return m ? asDigest(`sha256:${m[1]}`) : undefined;
}

function tagOf(ref: string): string {
  try {
    const name = normalizeReference(ref);
    if (name.includes('@')) throw new Error('a digest');
    return name;
  } catch {
    throw new UserInputError('ARCHIVE_INVALID', `load: the archive names an image ${JSON.stringify(ref)}, which is not a valid tag`);
  }
}

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);
const MANIFEST_TYPES = new Set([MEDIA_TYPE_MANIFEST, 'application/vnd.docker.distribution.manifest.v2+json']);
const CONFIG_TYPES = new Set([MEDIA_TYPE_CONFIG, 'application/vnd.docker.container.image.v1+json']);

async function ociSpecs(archive: StagedArchive, index: ImageIndex): Promise<ImageSpec[]> {
  const specs: ImageSpec[] = [];
  const visit = async (idx: ImageIndex, depth: number, inherited: string[]) => {
    if (!Array.isArray(idx.manifests)) throw new UserInputError('ARCHIVE_INVALID', 'load: an index without manifests');
    const platform = hostPlatform();
    for (const d of idx.manifests) {
      if (specs.length >= MAX_IMAGES) throw new UserInputError('ARCHIVE_INVALID', `load: the index lists more than ${MAX_IMAGES} images`);
      const names = [...inherited, ...nameOf(d)];
      if (INDEX_TYPES.has(d.mediaType)) {
        if (depth >= MAX_INDEX_DEPTH) throw new UserInputError('ARCHIVE_INVALID', 'load: indexes nest too deep');
        await visit(await readBlobJson<ImageIndex>(archive, d), depth + 1, names);
        continue;
      }
      if (!MANIFEST_TYPES.has(d.mediaType)) continue; // attestations and other artifacts
      // A multi-platform index: only the host's image (there is no emulation).
      if (d.platform && (d.platform.os !== platform.os || d.platform.architecture !== platform.architecture)) continue;
      const m = await readBlobJson<ImageManifest>(archive, d);
      if (!m.config || !Array.isArray(m.layers)) throw new UserInputError('ARCHIVE_INVALID', `load: the manifest ${d.digest} lacks a config or layers`);
      if (!CONFIG_TYPES.has(m.config.mediaType)) continue; // an artifact, not an image
      if (m.layers.length > MAX_LAYERS) throw new UserInputError('ARCHIVE_INVALID', `load: the manifest ${d.digest} has more than ${MAX_LAYERS} layers`);
      specs.push({
        config: { name: blobPath(m.config.digest), digest: asBlobDigest(m.config.digest) },
        layers: m.layers.map((l) => ({ name: blobPath(l.digest), digest: asBlobDigest(l.digest), size: l.size })),
        tags: [...new Set(names)],
      });
    }
  };
  await visit(index, 0, []);
  return specs;
}

/** The tag an index entry carries: containerd's full name, or a ref.name that is a whole reference. */
function nameOf(d: Descriptor): string[] {
  const full = d.annotations?.['io.containerd.image.name'];
  if (full) return [tagOf(full)];
  const ref = d.annotations?.[ANNOTATION_REF_NAME];
  // A bare ref.name (`latest`, `1.0`) is a tag without a repository: nothing to name the image by.
  if (ref && /[:/@]/.test(ref)) return [tagOf(ref)];
  return [];
}

function asBlobDigest(d: unknown): Digest {
  if (typeof d !== 'string' || !isDigest(d)) throw new UserInputError('ARCHIVE_INVALID', `load: ${JSON.stringify(d)} is not a sha256 digest`);
  return d;
}

function blobPath(d: unknown): string {
  return `blobs/sha256/${asBlobDigest(d).slice(7)}`;
}

async function readBlobJson<T>(archive: StagedArchive, d: Descriptor): Promise<T> {
  const name = blobPath(d.digest);
  const bytes = await archive.readSmall(name, MAX_JSON);
  if (!bytes) throw new UserInputError('ARCHIVE_INVALID', `load: ${name} is not in the archive`);
  if (sha256(bytes) !== d.digest) throw new UserInputError('DIGEST_MISMATCH', `load: ${name} hashes to ${sha256(bytes)}`);
  if (d.size !== undefined && d.size !== bytes.length) throw new UserInputError('ARCHIVE_INVALID', `load: ${name} has ${bytes.length} bytes, its descriptor says ${d.size}`);
  return parseJson<T>(bytes, name);
}
