// save: images from the store as one tar that both `docker load` (old and new: manifest.json,
// repositories) and OCI tools (oci-layout, index.json: skopeo's oci-archive) accept.
// Layers are written uncompressed, each once however many images share it; layers strata
// committed are regenerated from their snapshots and verified against their diff_id.
// https://github.com/opencontainers/image-spec/blob/main/image-layout.md
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { PassThrough, Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tarStream from 'tar-stream';
import { DigestStream, digestHex, sha256, type Digest } from '../digest.js';
import { DigestMismatchError } from '../errors.js';
import { tempName } from '../fsutil/atomic.js';
import { parseReference } from '../image/reference.js';
import {
  ANNOTATION_REF_NAME,
  MEDIA_TYPE_INDEX,
  MEDIA_TYPE_LAYER,
  MEDIA_TYPE_MANIFEST,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  type LayerRef,
  type StoredImage,
} from '../image/types.js';
import { writeLayerTar } from '../layer/tar.js';
import type { Store } from '../store/store.js';
import { decompressed } from './compression.js';

export interface SaveItem {
  image: StoredImage;
  /** Tags to record for it in the archive (`name:tag`); may be empty. */
  tags: string[];
}

export interface SaveOptions {
  /**
   * chainIDs of layers to leave out (`--exclude-base`): the manifests still list them, so
   * the archive loads only where they are already present (docker and strata skip a layer
   * whose chain they have without opening its file).
   */
  exclude?: ReadonlySet<Digest>;
}

/** Fixed time for the archive's own entries, so the same images give the same tar. */
const ARCHIVE_MTIME = new Date(0);

/**
 * Writes `items` to `dest` atomically: a temp file next to it, renamed into place when
 * complete, removed on any error. Returns the size written.
 */
export async function saveImages(store: Store, items: SaveItem[], dest: string, opts: SaveOptions = {}): Promise<{ size: number }> {
  const tmp = tempName(path.dirname(path.resolve(dest)), 'save');
  try {
    const { size } = await writeImageArchive(store, items, createWriteStream(tmp, { flags: 'wx', mode: 0o644 }), opts);
    const fh = await fs.open(tmp, 'r');
    await fh.sync().finally(() => fh.close());
    await fs.rename(tmp, dest);
    return { size };
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Streams the archive of `items` into `out` (ended on success, destroyed on failure). Items
 * naming the same image (config) become one image with all their tags; a layer shared by
 * several images is stored once. Returns the bytes written.
 */
export async function writeImageArchive(store: Store, items: SaveItem[], out: Writable, opts: SaveOptions = {}): Promise<{ size: number }> {
  const pack = tarStream.pack();
  let size = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      cb(null, chunk);
    },
  });
  const written = pipeline(pack, counter, out);
  try {
    await addEntry(pack, { name: 'blobs/', type: 'directory', mode: 0o755 });
    await addEntry(pack, { name: 'blobs/sha256/', type: 'directory', mode: 0o755 });
    const seen = new Set<string>();
    const dockerManifest: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
    const repositories: Record<string, Record<string, string>> = {};
    const index: ImageIndex = { schemaVersion: 2, mediaType: MEDIA_TYPE_INDEX, manifests: [] };

    for (const { image, tags } of mergeItems(items)) {
      const configPath = blobName(image.configDigest);
      if (!seen.has(configPath)) {
        seen.add(configPath);
        await addEntry(pack, { name: configPath, mode: 0o644 }, await store.readBlob(image.configDigest));
      }
      const layerPaths: string[] = [];
      const descriptors: Descriptor[] = [];
      for (const layer of image.layers) {
        const name = blobName(layer.diffId);
        layerPaths.push(name);
        descriptors.push({ mediaType: MEDIA_TYPE_LAYER, digest: layer.diffId, size: layer.size });
        if (seen.has(name) || opts.exclude?.has(layer.chainId)) continue;
        seen.add(name);
        await addLayer(store, pack, name, layer);
      }
      // The archive's manifest lists the uncompressed layers it holds (the image ID, the
      // config digest, is unchanged).
      const manifest: ImageManifest = { ...image.manifest, mediaType: MEDIA_TYPE_MANIFEST, layers: descriptors };
      const manifestBytes = Buffer.from(JSON.stringify(manifest));
      const manifestDesc: Descriptor = { mediaType: MEDIA_TYPE_MANIFEST, digest: sha256(manifestBytes), size: manifestBytes.length };
      if (!seen.has(blobName(manifestDesc.digest))) {
        seen.add(blobName(manifestDesc.digest));
        await addEntry(pack, { name: blobName(manifestDesc.digest), mode: 0o644 }, manifestBytes);
      }
      if (tags.length === 0) index.manifests.push(manifestDesc);
      for (const tag of tags) {
        const ref = parseReference(tag);
        index.manifests.push({
          ...manifestDesc,
          annotations: { 'io.containerd.image.name': tag, [ANNOTATION_REF_NAME]: ref.tag ?? 'latest' },
        });
        const top = image.layers[image.layers.length - 1];
        if (top) (repositories[ref.name] ??= {})[ref.tag ?? 'latest'] = digestHex(top.diffId);
      }
      dockerManifest.push({ Config: configPath, RepoTags: tags, Layers: layerPaths });
    }

    await addEntry(pack, { name: 'index.json', mode: 0o644 }, Buffer.from(JSON.stringify(index)));
    await addEntry(pack, { name: 'manifest.json', mode: 0o644 }, Buffer.from(JSON.stringify(dockerManifest)));
    await addEntry(pack, { name: 'oci-layout', mode: 0o644 }, Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
    if (Object.keys(repositories).length > 0) {
      await addEntry(pack, { name: 'repositories', mode: 0o644 }, Buffer.from(JSON.stringify(repositories)));
    }
    pack.finalize();
    await written;
    return { size };
  } catch (err) {
    pack.destroy();
    await written.catch(() => undefined);
    throw err;
  }
}

/** One item per image (config digest), its tags merged in order and without repeats. */
function mergeItems(items: SaveItem[]): SaveItem[] {
  const byId = new Map<Digest, SaveItem>();
  for (const it of items) {
    const have = byId.get(it.image.configDigest);
    if (!have) byId.set(it.image.configDigest, { image: it.image, tags: [...new Set(it.tags)] });
    else for (const t of it.tags) if (!have.tags.includes(t)) have.tags.push(t);
  }
  return [...byId.values()];
}

function blobName(d: Digest): string {
  return `blobs/sha256/${digestHex(d)}`;
}

type Header = Partial<tarStream.Header> & { name: string };

function addEntry(pack: tarStream.Pack, header: Partial<Header> & { name: string }, body?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const full: Header = { mtime: ARCHIVE_MTIME, uid: 0, gid: 0, ...header };
    if (body) pack.entry({ ...full, size: body.length }, body, (err) => (err ? reject(err) : resolve()));
    else pack.entry(full, (err) => (err ? reject(err) : resolve()));
  });
}

/** Streams one layer's uncompressed tar into the archive, verifying its diff_id. */
async function addLayer(store: Store, pack: tarStream.Pack, name: string, layer: LayerRef): Promise<void> {
  const meta = await store.readLayerMeta(layer.chainId);
  const verify = new DigestStream();
  let source: Readable;
  let producer: Promise<void> = Promise.resolve();
  if (meta.blob) {
    source = (await decompressed(store.openBlob(meta.blob.digest))).stream;
  } else {
    const through = new PassThrough();
    source = through;
    producer = writeLayerTar(store.layerDiffDir(layer.chainId), through, { sourceDateEpoch: meta.sourceDateEpoch }).then(
      () => void through.end(),
      (err: Error) => void through.destroy(err),
    );
  }
  await new Promise<void>((resolve, reject) => {
    const entry = pack.entry({ name, size: meta.size, mode: 0o644, mtime: ARCHIVE_MTIME, uid: 0, gid: 0 }, (err) => (err ? reject(err) : resolve()));
    pipeline(source, verify, entry).catch(reject);
  });
  await producer;
  if (verify.digest() !== layer.diffId || verify.size !== meta.size) {
    throw new DigestMismatchError(`save layer: ${layer.diffId} regenerated as ${verify.digest()} (${verify.size} bytes): the snapshot changed`);
  }
}
