// The store ($STRATA_HOME): blobs by digest, unpacked layer snapshots by chainID, tags.
// Contract: every write lands in tmp/ first and is renamed into place, so a crash leaves
// either nothing or a complete, verified object. Layout: docs/store.md and DESIGN.md.
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import lockfile from 'proper-lockfile';
import { DigestStream, asDigest, chainId as computeChainId, digestHex, isDigest, sha256, type Digest } from '../digest.js';
import { DigestMismatchError, NotFoundError, UserInputError } from '../errors.js';
import { exists, syncDir, tempEntryName, writeFileAtomic } from '../fsutil/atomic.js';
import {
  ANNOTATION_REF_NAME,
  ANNOTATION_TAG_TIME,
  MEDIA_TYPE_INDEX,
  type Descriptor,
  type ImageConfigFile,
  type ImageIndex,
  type ImageManifest,
  type LayerRef,
  type StoredImage,
} from '../image/types.js';
import { normalizeReference } from '../image/reference.js';
import { noteLayerBlob } from './layerBlobs.js';
import { registerOwner } from './owners.js';

/** What the store knows of one unpacked layer (layers/<chainID>/meta.json). */
export interface LayerMeta {
  diffId: Digest;
  chainId: Digest;
  parent?: Digest;
  /** Bytes of the uncompressed layer tar. */
  size: number;
  /** The clamp used when the tar was first made; regenerating it must use the same. */
  sourceDateEpoch?: number;
  /** Present when the layer came from outside as a blob (import, load, pull). */
  blob?: { digest: Digest; mediaType: string; size: number };
}

/**
 * True when `file` exists; its mtime becomes now, so a blob stored again counts as just
 * written (the GC keeps what an open lease's process writes, and this one is being used).
 */
async function touched(file: string): Promise<boolean> {
  const now = new Date();
  return fs.utimes(file, now, now).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw err;
    },
  );
}

export function defaultStoreRoot(): string {
  if (process.env.STRATA_HOME) return path.resolve(process.env.STRATA_HOME);
  const dataHome = process.env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return path.join(dataHome, 'strata');
}

/** Length of the short link names under l/: 200 lowerdirs must fit one page of mount options. */
const SHORT_ID_LENGTH = 12;

export class Store {
  private constructor(readonly root: string) {}

  /** Opens (creating when missing) the store at `root`. */
  static async open(root: string = defaultStoreRoot()): Promise<Store> {
    const store = new Store(path.resolve(root));
    for (const dir of ['blobs/sha256', 'layers', 'l', 'cache', 'contexts', 'tmp']) {
      await fs.mkdir(path.join(store.root, dir), { recursive: true });
    }
    // Before any temp entry of ours exists: a worker reclaims entries whose maker is unknown.
    await registerOwner(store.root);
    const index = store.indexPath();
    if (!(await exists(index))) {
      const empty: ImageIndex = { schemaVersion: 2, mediaType: MEDIA_TYPE_INDEX, manifests: [] };
      await fs.writeFile(index, JSON.stringify(empty), { flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
    }
    return store;
  }

  // ---- staging ----

  /** A fresh private directory under tmp/; the caller removes it (or renames it away). */
  async makeTempDir(prefix: string): Promise<string> {
    const dir = path.join(this.root, 'tmp', tempEntryName(prefix));
    await fs.mkdir(dir, { mode: 0o700 });
    return dir;
  }

  // ---- blobs ----

  blobPath(digest: Digest): string {
    return path.join(this.root, 'blobs', 'sha256', digestHex(digest));
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    return exists(this.blobPath(digest));
  }

  /**
   * Stores bytes; idempotent. Success means the content is stored at the returned digest.
   * `sync: false` leaves the fsync to a later syncBlob (see writeFileAtomic).
   */
  async putBlob(data: string | Uint8Array, expected?: Digest, opts: { sync?: boolean } = {}): Promise<{ digest: Digest; size: number }> {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    const digest = sha256(buf);
    if (expected && expected !== digest) throw new DigestMismatchError(`put blob: expected ${expected}, content is ${digest}`);
    const final = this.blobPath(digest);
    if (!(await touched(final))) await writeFileAtomic(final, buf, 0o644, opts);
    return { digest, size: buf.length };
  }

  /** fsyncs a stored blob (one written with `sync: false` that must now survive a power loss). */
  async syncBlob(digest: Digest): Promise<void> {
    const fh = await fs.open(this.blobPath(digest), 'r');
    await fh.sync().finally(() => fh.close());
  }

  /**
   * Streams `src` into the store, hashing while copying, then fsync and rename. With
   * `expected`, a mismatch stores nothing and throws. Idempotent.
   */
  async putBlobStream(src: Readable, expected?: Digest): Promise<{ digest: Digest; size: number }> {
    const tmp = path.join(this.root, 'tmp', tempEntryName('blob'));
    const hasher = new DigestStream();
    try {
      const out = createWriteStream(tmp, { flags: 'wx', mode: 0o644 });
      await pipeline(src, hasher, out);
      const fh = await fs.open(tmp, 'r');
      await fh.sync().finally(() => fh.close());
      const digest = hasher.digest();
      if (expected && expected !== digest) throw new DigestMismatchError(`put blob: expected ${expected}, content is ${digest}`);
      const final = this.blobPath(digest);
      if (await touched(final)) await fs.rm(tmp, { force: true });
      else await fs.rename(tmp, final);
      return { digest, size: hasher.size };
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
  }

  /** A fresh path under tmp/ (nothing is made there); the caller removes it or commits it. */
  tempPath(prefix: string): string {
    return path.join(this.root, 'tmp', tempEntryName(prefix));
  }

  /**
   * Moves `file` (a staged file in this store's tmp/, whose digest the caller computed
   * while writing it) into blobs/ without copying it. Idempotent: a blob already stored
   * is kept and `file` removed. The caller vouches for `digest`.
   */
  async putBlobFile(file: string, digest: Digest): Promise<void> {
    const final = this.blobPath(digest);
    if (await exists(final)) {
      await fs.rm(file, { force: true });
      return;
    }
    await fs.chmod(file, 0o644);
    const fh = await fs.open(file, 'r');
    await fh.sync().finally(() => fh.close());
    await fs.rename(file, final);
  }

  /** Removes a blob; absent is fine. The caller has checked that nothing refers to it. */
  async removeBlob(digest: Digest): Promise<void> {
    await fs.rm(this.blobPath(digest), { force: true });
  }

  /** Reads a whole (small) blob and verifies it against its digest. */
  async readBlob(digest: Digest): Promise<Buffer> {
    let buf: Buffer;
    try {
      buf = await fs.readFile(this.blobPath(digest));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError('BLOB_NOT_FOUND', `read blob: ${digest} is not in the store`, false);
      throw err;
    }
    const actual = sha256(buf);
    if (actual !== digest) throw new DigestMismatchError(`read blob: ${digest} is corrupt (content hashes to ${actual})`);
    return buf;
  }

  async readJsonBlob<T>(digest: Digest): Promise<T> {
    return JSON.parse((await this.readBlob(digest)).toString('utf8')) as T;
  }

  /** A stream of a blob's bytes; the caller verifies the digest if it needs to. */
  openBlob(digest: Digest): Readable {
    return createReadStream(this.blobPath(digest));
  }

  // ---- layers ----

  layerDir(chain: Digest): string {
    return path.join(this.root, 'layers', digestHex(chain));
  }

  layerDiffDir(chain: Digest): string {
    return path.join(this.layerDir(chain), 'diff');
  }

  async hasLayer(chain: Digest): Promise<boolean> {
    return exists(path.join(this.layerDir(chain), 'meta.json'));
  }

  async readLayerMeta(chain: Digest): Promise<LayerMeta> {
    try {
      return JSON.parse(await fs.readFile(path.join(this.layerDir(chain), 'meta.json'), 'utf8')) as LayerMeta;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError('LAYER_NOT_FOUND', `read layer: ${chain} is not in the store`, false);
      throw err;
    }
  }

  /** The chain ending at `top`, bottom layer first, from the parent links in meta.json. */
  async chainOf(top: Digest | undefined): Promise<Digest[]> {
    const chain: Digest[] = [];
    for (let cur = top; cur; cur = (await this.readLayerMeta(cur)).parent) chain.push(cur);
    return chain.reverse();
  }

  /** The path, relative to the store root, of the short link to a layer's diff/. */
  shortLink(chain: Digest): string {
    return path.join('l', digestHex(chain).slice(0, SHORT_ID_LENGTH));
  }

  /**
   * Moves a staged snapshot directory into layers/<chainID>/diff and records its meta.
   * Idempotent: when the layer is already stored, the staged directory is removed and the
   * stored one kept. Returns the chainID.
   */
  async commitLayer(stagedDiff: string, meta: Omit<LayerMeta, 'chainId'>): Promise<Digest> {
    const chain = computeChainId(meta.parent, meta.diffId);
    const final = this.layerDir(chain);
    if ((await this.hasLayer(chain)) && (await this.reuseLayer(chain))) {
      await fs.rm(stagedDiff, { recursive: true, force: true });
      await this.ensureShortLink(chain);
      // The caller unpacked this blob to the layer: images that name it describe this layer.
      if (meta.blob) await noteLayerBlob(this.root, meta.diffId, meta.blob);
      return chain;
    }
    const staging = await this.makeTempDir('layer');
    let torn: string | undefined;
    try {
      await fs.rename(stagedDiff, path.join(staging, 'diff'));
      await writeFileAtomic(path.join(staging, 'meta.json'), JSON.stringify({ ...meta, chainId: chain }, null, 1));
      // Never delete `final` before renaming: a concurrent commit of the same layer may have
      // just stored it, and its caller may already be using it.
      const renamed = async (): Promise<boolean> => {
        try {
          await fs.rename(staging, final);
          return true;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw err;
          return false;
        }
      };
      // When the rename finds a directory with meta.json, another build committed the same
      // layer first: theirs is equal by construction. Without meta.json it is a torn commit:
      // move it aside (atomically) and try once more.
      if (!(await renamed()) && !(await this.hasLayer(chain))) {
        torn = await this.makeTempDir('torn');
        await fs.rename(final, path.join(torn, 'layer')).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
        await renamed();
      }
      await syncDir(path.dirname(final));
    } finally {
      await fs.rm(staging, { recursive: true, force: true });
      if (torn) await fs.rm(torn, { recursive: true, force: true });
    }
    await this.ensureShortLink(chain);
    return chain;
  }

  /**
   * The lock a layer's removal (the GC) and a commit that finds the layer stored both take, so
   * a layer a commit reuses is never removed under it: `layers/<hex>.lock`.
   */
  lockLayer(chain: Digest): Promise<() => Promise<void>> {
    return lockfile.lock(this.layerDir(chain), {
      lockfilePath: `${this.layerDir(chain)}.lock`,
      realpath: false,
      retries: { retries: 100, minTimeout: 20, maxTimeout: 200 },
      stale: 30_000,
    });
  }

  /**
   * Takes a layer out of the store under its lock: its directory is renamed into tmp/ (so it
   * disappears at once and whole) and removed there, with its short link. With `storedAt`
   * (meta.json's mtime when the caller decided), false if the layer was stored again since:
   * a commit found it and is using it. The caller has checked that nothing holds it
   * (engine/store/refs.ts).
   */
  async removeLayer(chain: Digest, storedAt?: number): Promise<boolean> {
    const release = await this.lockLayer(chain);
    try {
      if (storedAt !== undefined) {
        const st = await fs.stat(path.join(this.layerDir(chain), 'meta.json')).catch(() => undefined);
        if (!st || st.mtimeMs !== storedAt) return false;
      }
      const trash = await this.makeTempDir('removed');
      try {
        await fs.rename(this.layerDir(chain), path.join(trash, 'layer')).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
        const link = path.join(this.root, this.shortLink(chain));
        const target = await fs.readlink(link).catch(() => undefined);
        if (target === path.join('..', 'layers', digestHex(chain), 'diff')) await fs.rm(link, { force: true });
      } finally {
        await fs.rm(trash, { recursive: true, force: true });
      }
      return true;
    } finally {
      await release();
    }
  }

  /** Marks a stored layer as just committed (its meta.json's mtime), under its lock; false if it is gone. */
  private async reuseLayer(chain: Digest): Promise<boolean> {
    const release = await this.lockLayer(chain);
    try {
      const now = new Date();
      return await fs.utimes(path.join(this.layerDir(chain), 'meta.json'), now, now).then(
        () => true,
        () => false,
      );
    } finally {
      await release();
    }
  }

  private async ensureShortLink(chain: Digest): Promise<void> {
    const link = path.join(this.root, this.shortLink(chain));
    const target = path.join('..', 'layers', digestHex(chain), 'diff');
    try {
      await fs.symlink(target, link);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const current = await fs.readlink(link);
      if (current !== target) throw new Error(`commit layer: short link ${link} already names ${current}`, { cause: err });
    }
  }

  // ---- tags and images ----

  indexPath(): string {
    return path.join(this.root, 'index.json');
  }

  async readIndex(): Promise<ImageIndex> {
    return JSON.parse(await fs.readFile(this.indexPath(), 'utf8')) as ImageIndex;
  }

  /**
   * Runs `change` on index.json under the store's lock and writes the index it leaves
   * (atomically). Every change to tags goes through here, so concurrent builds, tags and
   * removals never lose each other's entries.
   */
  async updateIndex<T>(change: (index: ImageIndex) => T | Promise<T>): Promise<T> {
    const release = await lockfile.lock(this.indexPath(), { retries: { retries: 50, minTimeout: 20, maxTimeout: 200 }, stale: 10_000 });
    try {
      const index = await this.readIndex();
      const result = await change(index);
      await writeFileAtomic(this.indexPath(), JSON.stringify(index, null, 1));
      return result;
    } finally {
      await release();
    }
  }

  /**
   * Points each tag at `manifest`, replacing what the tag named before. With no tags the
   * image is recorded untagged; either way it is no longer an intermediate image. An image that loses its last tag stays listed, untagged
   * (docker's dangling `<none>:<none>`), until it is removed.
   */
  async setTags(tags: string[], manifest: Descriptor): Promise<void> {
    const names = tags.map(normalizeReference);
    const now = new Date().toISOString();
    await this.updateIndex((index) => {
      const kept = index.manifests.filter((d) => !names.includes(d.annotations?.[ANNOTATION_REF_NAME] ?? ''));
      // A manifest whose last tag moved away stays, untagged.
      for (const d of index.manifests) {
        if (d.digest !== manifest.digest && !kept.some((k) => k.digest === d.digest)) kept.push({ mediaType: d.mediaType, digest: d.digest, size: d.size });
      }
      // A tagged image needs no untagged entry.
      if (names.length > 0) {
        for (let i = kept.length - 1; i >= 0; i--) if (kept[i]!.digest === manifest.digest && !kept[i]!.annotations?.[ANNOTATION_REF_NAME]) kept.splice(i, 1);
      }
      // Committed as a build's result: no longer an intermediate image (images lists it).
      for (let i = 0; i < kept.length; i++) {
        const d = kept[i]!;
        if (d.digest === manifest.digest && !d.annotations?.[ANNOTATION_REF_NAME]) kept[i] = { mediaType: d.mediaType, digest: d.digest, size: d.size };
      }
      for (const name of names) {
        kept.push({
          mediaType: manifest.mediaType,
          digest: manifest.digest,
          size: manifest.size,
          annotations: { [ANNOTATION_REF_NAME]: name, [ANNOTATION_TAG_TIME]: now },
        });
      }
      if (!kept.some((d) => d.digest === manifest.digest)) kept.push({ mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size });
      index.manifests = kept;
    });
  }

  /** All tags (and `name@digest` references) with the manifest each names. */
  async listTags(): Promise<{ name: string; manifest: Digest }[]> {
    const index = await this.readIndex();
    return index.manifests.filter((d) => d.annotations?.[ANNOTATION_REF_NAME]).map((d) => ({ name: d.annotations![ANNOTATION_REF_NAME]!, manifest: d.digest }));
  }

  /**
   * Finds an image as docker does: by a full image ID (`sha256:<hex>` of the config, or the
   * 64 hex alone), by tag (`name[:tag]`), by manifest digest (`name@sha256:…`), and last by
   * a unique hex prefix of an image ID. Untagged images are found by ID too. A prefix that
   * names several images is an error (IMAGE_AMBIGUOUS).
   */
  async findImage(ref: string): Promise<StoredImage | undefined> {
    const index = await this.readIndex();
    const configOf = new Map<Digest, Digest>();
    const byId = async (match: (id: string) => boolean): Promise<Digest[]> => {
      const found = new Map<Digest, Digest>(); // image ID → first manifest
      for (const d of index.manifests) {
        if (!configOf.has(d.digest)) {
          const manifest = await this.readJsonBlob<ImageManifest>(d.digest).catch(() => undefined);
          if (!manifest) continue;
          configOf.set(d.digest, asDigest(manifest.config.digest));
        }
        const id = configOf.get(d.digest)!;
        if (match(digestHex(id)) && !found.has(id)) found.set(id, d.digest);
      }
      return [...found.values()];
    };
    const full = /^(?:sha256:)?([0-9a-f]{64})$/.exec(ref);
    if (full) {
      const [manifest] = await byId((id) => id === full[1]);
      return manifest ? this.loadImage(manifest) : undefined;
    }
    let name: string | undefined;
    try {
      name = normalizeReference(ref);
    } catch {
      name = undefined;
    }
    if (name !== undefined) {
      const at = name.indexOf('@');
      if (at >= 0) {
        const d = name.slice(at + 1);
        return isDigest(d) && (await this.hasBlob(d)) ? this.loadImage(d) : undefined;
      }
      const hit = index.manifests.find((d) => d.annotations?.[ANNOTATION_REF_NAME] === name);
      if (hit) return this.loadImage(hit.digest);
    }
    const prefix = /^(?:sha256:)?([0-9a-f]+)$/.exec(ref)?.[1];
    if (prefix === undefined) return undefined;
    const hits = await byId((id) => id.startsWith(prefix));
    if (hits.length > 1) throw new UserInputError('IMAGE_AMBIGUOUS', `find image: ${ref}: several images have IDs starting with it`);
    return hits[0] ? this.loadImage(hits[0]) : undefined;
  }

  /** Like findImage, but a missing image is a user error naming the reference. */
  async getImage(ref: string): Promise<StoredImage> {
    const img = await this.findImage(ref);
    if (!img) throw new UserInputError('IMAGE_NOT_FOUND', `find image: ${ref}: no such image in the local store (${this.root})`);
    return img;
  }

  async loadImage(manifestDigest: Digest): Promise<StoredImage> {
    const manifest = await this.readJsonBlob<ImageManifest>(manifestDigest);
    const configDigest = asDigest(manifest.config.digest);
    const config = await this.readJsonBlob<ImageConfigFile>(configDigest);
    const layers: LayerRef[] = [];
    let parent: Digest | undefined;
    config.rootfs.diff_ids.forEach((diffId, i) => {
      const d = manifest.layers[i]!;
      const chain = computeChainId(parent, diffId);
      layers.push({ diffId, chainId: chain, size: 0, digest: d.digest, mediaType: d.mediaType, blobSize: d.size });
      parent = chain;
    });
    for (const layer of layers) layer.size = (await this.readLayerMeta(layer.chainId)).size;
    return { manifestDigest, manifest, configDigest, config, layers };
  }
}
