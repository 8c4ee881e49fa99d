// pull: an image from a registry into the store — the manifest (an index resolved to the
// platform's entry), the config, and each layer the store lacks, downloaded, verified and
// unpacked in one pass, several at once. Blobs are kept as they came, next to their
// snapshot (DESIGN.md: "Blobs that arrive from outside … are kept as they came").
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { chainId as computeChainId, DigestStream, isDigest, sha256, type Digest } from '../digest.js';
import { EngineError, RegistryError, UserInputError } from '../errors.js';
import { decompressed } from '../archive/compression.js';
import { extractTar } from '../fsutil/extract.js';
import { hostPlatform, type Platform } from '../image/platform.js';
import { parseReference } from '../image/reference.js';
import type { Descriptor, ImageConfigFile, ImageManifest } from '../image/types.js';
import type { Store } from '../store/store.js';
import { findCredentials } from './auth.js';
import { RegistryClient } from './client.js';
import { MANIFEST_ACCEPT, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, parseManifest, selectManifest } from './manifest.js';
import { noteBlobLocation } from './records.js';
import { pullSources, registryReference, type RegistryReference } from './reference.js';

export interface PullProgress {
  /** The layer's blob digest. */
  digest: Digest;
  /** `exists`: the store has the layer; the others follow one download. */
  status: 'exists' | 'waiting' | 'downloading' | 'extracting' | 'done';
  bytes: number;
  size: number;
}

export interface PullOptions {
  /** The platform an index is resolved for; the host's by default. */
  platform?: Platform;
  signal?: AbortSignal;
  /** Where config.json is read from; default $DOCKER_CONFIG or ~/.docker. */
  dockerConfig?: string;
  env?: NodeJS.ProcessEnv;
  onProgress?: (p: PullProgress) => void;
  /** Layers downloaded at once. */
  concurrency?: number;
}

/** An image found in a registry, its manifest and config already in the store. */
export interface RemoteImage {
  /** The reference as given. */
  reference: string;
  /** Where it was found (a mirror, or the registry the name names). */
  source: RegistryReference;
  /** The digest the reference resolved to: the index's when there is one (docker's `Digest:`). */
  digest: Digest;
  /** The platform's image manifest. */
  manifestDigest: Digest;
  manifest: ImageManifest;
  configDigest: Digest;
  config: ImageConfigFile;
}

export interface PullResult {
  image: RemoteImage;
  layers: { digest: Digest; fetched: boolean }[];
  /** The store's tag already named this manifest, and no layer was missing. */
  upToDate: boolean;
}

const DEFAULT_CONCURRENCY = 3;
/** A download cut midway is started again this many times before the pull fails. */
const LAYER_ATTEMPTS = 3;

/**
 * Pulls `reference` into the store and tags it (a digest reference is kept untagged, found
 * by its digest). Idempotent: layers the store has are not fetched again.
 */
export async function pullImage(store: Store, reference: string, opts: PullOptions = {}): Promise<PullResult> {
  const image = await resolveRemote(store, reference, opts);
  const name = storeName(reference);
  const before = name ? await store.findImage(name).catch(() => undefined) : undefined;
  const layers = await fetchLayers(store, image, opts);
  if (name) await store.setTags([name], { mediaType: image.manifest.mediaType, digest: image.manifestDigest, size: (await store.readBlob(image.manifestDigest)).length });
  const upToDate = before?.manifestDigest === image.manifestDigest && layers.every((l) => !l.fetched);
  return { image, layers, upToDate };
}

/** The tag a pull keeps (`ubuntu:latest`), or undefined for a digest reference. */
function storeName(reference: string): string | undefined {
  const ref = parseReference(reference);
  return ref.digest ? undefined : `${ref.name}:${ref.tag}`;
}

/**
 * Resolves `reference` in the registry (Docker Hub's mirrors first) to the platform's image
 * manifest, and stores manifest, index and config blobs, each verified against its digest.
 */
export async function resolveRemote(store: Store, reference: string, opts: PullOptions = {}): Promise<RemoteImage> {
  const what = `pull ${reference}`;
  const ref = registryReference(reference, opts.env);
  const sources = pullSources(ref, opts.env);
  let last: unknown;
  for (const source of sources) {
    try {
      const client = await clientFor(source, what, opts);
      return await resolveAt(store, client, reference, opts.platform ?? hostPlatform(), what);
    } catch (err) {
      // A mirror that fails (down, lacking the image) hands over to the next source.
      if (source === sources[sources.length - 1] || opts.signal?.aborted) throw err;
      last = err;
    }
  }
  throw last;
}

async function clientFor(source: RegistryReference, what: string, opts: PullOptions): Promise<RegistryClient> {
  const credentials = await findCredentials(source.registry, opts.dockerConfig);
  return new RegistryClient(source, what, { credentials, signal: opts.signal, actions: 'pull' });
}

async function resolveAt(store: Store, client: RegistryClient, reference: string, platform: Platform, what: string): Promise<RemoteImage> {
  const source = client.target;
  const top = await fetchManifest(client, source.reference, what);
  let manifestBytes = top.bytes;
  let parsed = top.parsed;
  if (parsed.kind === 'index') {
    const entry = selectManifest(parsed.index, platform, what);
    const child = await fetchManifest(client, entry.digest, what);
    if (child.bytes.length !== entry.size)
      throw new RegistryError(`${what}: manifest ${entry.digest} is ${child.bytes.length} bytes, the index says ${entry.size}`, { permanent: true });
    if (child.parsed.kind !== 'image') throw new RegistryError(`${what}: the index entry for ${platform.os}/${platform.architecture} is itself an index`, { permanent: true });
    await store.putBlob(top.bytes, top.digest);
    manifestBytes = child.bytes;
    parsed = child.parsed;
  }
  const manifest = (parsed as { manifest: ImageManifest }).manifest;
  const manifestDigest = sha256(manifestBytes);
  const configDigest = manifest.config.digest;
  if (!(await store.hasBlob(configDigest))) {
    const bytes = await client.getBlobBytes(configDigest, MAX_CONFIG_BYTES);
    if (sha256(bytes) !== configDigest) throw new RegistryError(`${what}: config ${configDigest} arrived as ${sha256(bytes)}`, { permanent: true });
    checkConfig(bytes, manifest, what);
    await store.putBlob(bytes, configDigest);
  }
  const config = checkConfig(await store.readBlob(configDigest), manifest, what);
  await store.putBlob(manifestBytes, manifestDigest);
  await noteBlobLocation(store.root, source.registry, configDigest, source.repository);
  return { reference, source, digest: top.digest, manifestDigest, manifest, configDigest, config };
}

async function fetchManifest(client: RegistryClient, reference: string, what: string) {
  const { bytes, mediaType } = await client.getManifest(reference, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES);
  const digest = sha256(bytes);
  if (isDigest(reference) && digest !== reference) throw new RegistryError(`${what}: manifest ${reference} arrived as ${digest}`, { permanent: true });
  return { bytes, digest, parsed: parseManifest(bytes, mediaType, what) };
}

/** The config's fields strata reads, checked against the manifest (one diff_id per layer). */
function checkConfig(bytes: Buffer, manifest: ImageManifest, what: string): ImageConfigFile {
  const bad = (detail: string) => new RegistryError(`${what}: the image config is invalid: ${detail}`, { permanent: true });
  let config: ImageConfigFile;
  try {
    config = JSON.parse(bytes.toString('utf8')) as ImageConfigFile;
  } catch {
    throw bad('not JSON');
  }
  if (!config || typeof config !== 'object') throw bad('not a JSON object');
  const ids = config.rootfs?.diff_ids;
  if (!Array.isArray(ids) || !ids.every((d) => typeof d === 'string' && isDigest(d))) throw bad('rootfs.diff_ids is not a list of sha256 digests');
  if (ids.length !== manifest.layers.length) throw bad(`${ids.length} diff_ids for ${manifest.layers.length} layers`);
  if (typeof config.architecture !== 'string' || typeof config.os !== 'string') throw bad('no os or architecture');
  if (config.os !== 'linux') throw new UserInputError('IMAGE_OS_UNSUPPORTED', `${what}: the image is for ${config.os}; strata builds linux images`);
  return config;
}

/**
 * Fetches the layers of `image` the store lacks, `concurrency` at a time, and records where
 * the registry keeps them (for cross-repository mounts). Returns each layer and whether it
 * was fetched. Idempotent.
 */
export async function fetchLayers(store: Store, image: RemoteImage, opts: PullOptions = {}): Promise<{ digest: Digest; fetched: boolean }[]> {
  const what = `pull ${image.reference}`;
  const diffIds = image.config.rootfs.diff_ids;
  let parent: Digest | undefined;
  const jobs = image.manifest.layers.map((desc, i) => {
    const job = { desc, diffId: diffIds[i]!, parent, chain: computeChainId(parent, diffIds[i]!) };
    parent = job.chain;
    return job;
  });
  const results: { digest: Digest; fetched: boolean }[] = jobs.map((j) => ({ digest: j.desc.digest, fetched: false }));
  const pending: number[] = [];
  for (let i = 0; i < jobs.length; i++) {
    const j = jobs[i]!;
    if (await store.hasLayer(j.chain)) opts.onProgress?.({ digest: j.desc.digest, status: 'exists', bytes: j.desc.size, size: j.desc.size });
    else {
      opts.onProgress?.({ digest: j.desc.digest, status: 'waiting', bytes: 0, size: j.desc.size });
      pending.push(i);
    }
  }
  let client: RegistryClient | undefined;
  const getClient = async () => (client ??= await clientFor(image.source, what, opts));
  let next = 0;
  const worker = async () => {
    while (next < pending.length) {
      const i = pending[next++]!;
      const j = jobs[i]!;
      // The same layer twice in one image (it happens) is fetched once.
      if (await store.hasLayer(j.chain)) continue;
      await fetchLayer(store, getClient, j.desc, j.diffId, j.parent, what, opts);
      results[i]!.fetched = true;
    }
  };
  const workers = Array.from({ length: Math.min(opts.concurrency ?? DEFAULT_CONCURRENCY, pending.length) }, worker);
  const settled = await Promise.allSettled(workers);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  for (const j of jobs) await noteBlobLocation(store.root, image.source.registry, j.desc.digest, image.source.repository);
  return results;
}

/** One layer: download (or the stored blob), verify (size, digest, diff_id), unpack, commit; tried again when the connection drops. The remote store (engine/remote/) fetches through it too. */
export async function fetchLayer(
  store: Store,
  client: () => Promise<RegistryClient>,
  desc: Descriptor,
  diffId: Digest,
  parent: Digest | undefined,
  what: string,
  opts: PullOptions,
): Promise<void> {
  if (desc.mediaType.includes('foreign') || desc.mediaType.includes('nondistributable')) {
    throw new UserInputError('LAYER_UNSUPPORTED', `${what}: layer ${desc.digest} is a non-distributable layer (${desc.mediaType}), which strata does not fetch`);
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetchLayerOnce(store, client, desc, diffId, parent, what, opts);
    } catch (err) {
      const permanent = err instanceof EngineError && err.userError;
      if (permanent || attempt >= LAYER_ATTEMPTS || opts.signal?.aborted) throw err;
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
}

async function fetchLayerOnce(
  store: Store,
  client: () => Promise<RegistryClient>,
  desc: Descriptor,
  diffId: Digest,
  parent: Digest | undefined,
  what: string,
  opts: PullOptions,
): Promise<void> {
  const stored = await store.hasBlob(desc.digest);
  const staging = await store.makeTempDir('pull');
  const diff = path.join(staging, 'diff');
  let src: Readable | undefined;
  try {
    await fs.mkdir(diff, { mode: 0o755 });
    src = stored ? store.openBlob(desc.digest) : await (await client()).openBlob(desc.digest);
    // Wired with no await in between: bytes flow (and may fail) as soon as they are piped.
    const guard = new SizeGuard(desc, what, (bytes) => opts.onProgress?.({ digest: desc.digest, status: 'downloading', bytes, size: desc.size }));
    const toUnpack = new PassThrough();
    const toStore = stored ? undefined : new PassThrough();
    guard.on('error', (e) => {
      toUnpack.destroy(e);
      toStore?.destroy(e);
    });
    src.on('error', (e) => guard.destroy(e));
    src.pipe(guard);
    guard.pipe(toUnpack);
    if (toStore) guard.pipe(toStore);
    // The blob is stored (hashed, checked against its digest) while the same bytes are
    // unpacked: one pass over the network and the disk. Nothing is committed unless both
    // the blob's digest and the tar's diff_id are right.
    const saving = toStore ? store.putBlobStream(toStore, desc.digest) : Promise.resolve(undefined);
    const unpacking = (async () => {
      const { stream } = await decompressed(toUnpack);
      const hasher = new DigestStream();
      stream.on('error', (e) => hasher.destroy(e));
      await extractTar(stream.pipe(hasher), diff, { whiteouts: 'overlay' });
      return hasher;
    })();
    const [saved, hashed] = await Promise.allSettled([saving, unpacking]);
    if (saved.status === 'rejected' || hashed.status === 'rejected') {
      src.destroy();
      // The guard's own error (the registry lied) says more than the streams it broke.
      if (guard.failure) throw guard.failure;
      throw saved.status === 'rejected' ? saved.reason : (hashed as PromiseRejectedResult).reason;
    }
    const hasher = hashed.value;
    if (hasher.digest() !== diffId) {
      throw new RegistryError(`${what}: layer ${desc.digest} unpacks to ${hasher.digest()}, the config says ${diffId}`, { permanent: true });
    }
    opts.onProgress?.({ digest: desc.digest, status: 'extracting', bytes: desc.size, size: desc.size });
    await store.commitLayer(diff, { diffId, parent, size: hasher.size, blob: { digest: desc.digest, mediaType: desc.mediaType, size: desc.size } });
    opts.onProgress?.({ digest: desc.digest, status: 'done', bytes: desc.size, size: desc.size });
  } finally {
    src?.destroy();
    await fs.rm(staging, { recursive: true, force: true });
  }
}

/**
 * Passes a blob's bytes on, failing as soon as more arrive than the descriptor says (a
 * registry cannot make us store an endless stream) and at the end when fewer did.
 */
class SizeGuard extends Transform {
  /** Why the guard stopped the stream, if it did. */
  failure?: Error;
  private bytes = 0;
  private reported = 0;
  constructor(
    private readonly desc: Descriptor,
    private readonly what: string,
    private readonly report: (bytes: number) => void,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.desc.size) {
      this.failure = new RegistryError(`${this.what}: layer ${this.desc.digest} is bigger than the ${this.desc.size} bytes its descriptor says`, { permanent: true });
      return cb(this.failure);
    }
    if (this.bytes - this.reported >= 1 << 20) {
      this.reported = this.bytes;
      this.report(this.bytes);
    }
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    if (this.bytes !== this.desc.size) {
      return cb(Object.assign(new Error(`layer ${this.desc.digest} ended after ${this.bytes} of ${this.desc.size} bytes`), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    }
    cb();
  }
}
