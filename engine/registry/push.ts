// push: an image from the store to a registry — each blob the repository lacks (mounted
// from another repository of the registry when one is known to hold it, else uploaded),
// then the manifest under the tag.
//
// Layers go compressed. A layer that came as a compressed blob (pull, a gzip import) goes
// as it came; a layer strata built is compressed while it streams (gzip, or zstd), into a
// spool file that the upload reads behind the compressor. The spool is then kept in the
// store as the layer's compressed blob, with a record diffID+compression → digest: the next
// push (to any registry) compresses nothing, and the same image always gives the same
// manifest digest. Keeping costs disk (the compressed size); regenerating would cost the
// whole compression again at each push to a registry that lacks the blob, and its digest
// would hang on zlib's version. docs/benchmarks.md has the figures.
//
// Uploads go in chunks (PATCH with Content-Range); after a dropped connection the upload
// asks the registry how far it got (GET on the session → Range) and goes on from there.
import { createReadStream } from 'node:fs';
import { promises as fs } from 'node:fs';
import { sha256, type Digest } from '../digest.js';
import { DigestMismatchError, RegistryError } from '../errors.js';
import { MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_ZSTD, MEDIA_TYPE_MANIFEST, type Descriptor, type ImageManifest, type LayerRef, type StoredImage } from '../image/types.js';
import { noteLayerBlob } from '../store/layerBlobs.js';
import type { Store } from '../store/store.js';
import { findCredentials } from './auth.js';
import { RegistryClient } from './client.js';
import type { PushCompression } from './compress.js';
import { compressLayer, type CompressJob } from './compressJob.js';
import { DOCKER_LAYER_GZIP } from './manifest.js';
import { blobLocations, noteBlobLocation, readCompressed, writeCompressed } from './records.js';
import { registryReference, type RegistryReference } from './reference.js';
import { Spool } from './spool.js';

export interface PushProgress {
  /** The blob being uploaded (a layer's diff_id while it is still being compressed), and how far it got. */
  digest: Digest;
  bytes: number;
  size: number;
}

export interface PushedBlob {
  digest: Digest;
  size: number;
  kind: 'layer' | 'config';
  /** False when the registry already had it, or mounted it. */
  uploaded: boolean;
  /** The repository it was mounted from. */
  mountedFrom?: string;
}

export interface PushResult {
  /** The reference as given, e.g. `127.0.0.1:5000/app:1`. */
  reference: string;
  /** The pushed manifest's digest: what the registry has (it differs from the local one when layers were compressed). */
  digest: Digest;
  size: number;
  mediaType: string;
  blobs: PushedBlob[];
}

export interface PushOptions {
  onProgress?: (p: PushProgress) => void;
  signal?: AbortSignal;
  /** Where config.json is read from (tests); default $DOCKER_CONFIG or ~/.docker. */
  dockerConfig?: string;
  /** How layers strata built are compressed (default gzip). */
  compression?: PushCompression;
  /** Layers pushed at once (compression runs on that many cores). */
  concurrency?: number;
  /** Put the manifest under its digest, not the reference's tag (members of a manifest list). */
  byDigest?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** Bytes per PATCH while the spool grows; a blob up to this size goes in one PUT. */
export const CHUNK_BYTES = 32 << 20;
/** Reads from spool files in large pieces: fewer events per uploaded byte. */
const READ_CHUNK = 1 << 20;
const DEFAULT_CONCURRENCY = 3;
/** Resumes of one upload after dropped connections or 5xx answers before the push fails. */
const MAX_RESUMES = 8;

/** How one layer gets to the registry: a blob file the store has, or compressed on the way. */
type LayerPlan = { kind: 'blob'; desc: Descriptor; file: string } | { kind: 'compress'; layer: LayerRef; source: CompressJob['source'] };

interface Ctx {
  store: Store;
  client: RegistryClient;
  ref: RegistryReference;
  opts: PushOptions;
  compression: PushCompression;
}

/**
 * Pushes `image` to `target` (`host[:port]/repo:tag`). Blobs the repository has are skipped
 * (HEAD), blobs another repository of the registry holds are mounted, the others uploaded,
 * several at once; the manifest is put last, so the tag never names an incomplete image.
 * Idempotent: a second push uploads nothing and gives the same digest.
 */
export async function pushImage(store: Store, image: StoredImage, target: string, opts: PushOptions = {}): Promise<PushResult> {
  const ref = registryReference(target, opts.env);
  const what = `push ${target}`;
  const compression = opts.compression ?? 'gzip';
  const plans = await Promise.all(image.layers.map((l) => planLayer(store, l, compression)));
  const config = image.manifest.config;

  // Where each known blob lives in this registry: their pull scope goes on the token.
  const known = [config.digest, ...plans.flatMap((p) => (p.kind === 'blob' ? [p.desc.digest] : []))];
  const mountFrom = new Set<string>();
  for (const d of known) for (const r of await blobLocations(store.root, ref.registry, d)) if (r !== ref.repository) mountFrom.add(r);
  const credentials = await findCredentials(ref.registry, opts.dockerConfig);
  const client = new RegistryClient(ref, what, { credentials, signal: opts.signal, actions: 'pull,push', mountFrom: [...mountFrom] });
  const ctx: Ctx = { store, client, ref, opts, compression };

  const pushed: (PushedBlob & { mediaType: string })[] = new Array(plans.length);
  let next = 0;
  const worker = async () => {
    while (next < plans.length) {
      const i = next++;
      pushed[i] = await pushLayer(ctx, plans[i]!, what);
    }
  };
  const workers = Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? DEFAULT_CONCURRENCY, plans.length)) }, worker);
  const settled = await Promise.allSettled(workers);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  const configPushed = await sendKnownBlob(ctx, config, store.blobPath(config.digest));

  const { bytes, mediaType } = await manifestFor(store, image, pushed);
  const digest = sha256(bytes);
  const answered = await client.putManifest(opts.byDigest ? digest : ref.reference, mediaType, bytes);
  if (answered && answered !== digest) {
    throw new RegistryError(`${what}: registry ${ref.registry} stored the manifest as ${answered}, not ${digest}`);
  }
  const blobs: PushedBlob[] = [...pushed.map(({ mediaType: _m, ...b }) => b), { ...configPushed, kind: 'config' }];
  return { reference: target, digest, size: bytes.length, mediaType, blobs };
}

/**
 * The manifest the registry gets: the stored one, byte for byte, when every layer goes as
 * the manifest lists it (a pulled image keeps its digest); else an OCI manifest listing the
 * pushed (compressed) layers.
 */
async function manifestFor(store: Store, image: StoredImage, pushed: { digest: Digest; size: number; mediaType: string }[]): Promise<{ bytes: Buffer; mediaType: string }> {
  if (pushed.every((p, i) => p.digest === image.manifest.layers[i]?.digest)) {
    return { bytes: await store.readBlob(image.manifestDigest), mediaType: image.manifest.mediaType };
  }
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_MANIFEST,
    config: { mediaType: image.manifest.config.mediaType, digest: image.manifest.config.digest, size: image.manifest.config.size },
    layers: pushed.map((p) => ({ mediaType: p.mediaType === DOCKER_LAYER_GZIP ? MEDIA_TYPE_LAYER_GZIP : p.mediaType, digest: p.digest, size: p.size })),
  };
  return { bytes: Buffer.from(JSON.stringify(manifest)), mediaType: MEDIA_TYPE_MANIFEST };
}

function isCompressed(mediaType: string): boolean {
  return /gzip|zstd/.test(mediaType);
}

/** A layer's blob as stored when compressed, else its recorded compressed blob, else compression on the way. */
async function planLayer(store: Store, layer: LayerRef, compression: PushCompression): Promise<LayerPlan> {
  const meta = await store.readLayerMeta(layer.chainId);
  if (meta.blob && isCompressed(meta.blob.mediaType) && (await store.hasBlob(meta.blob.digest))) {
    return { kind: 'blob', desc: { mediaType: meta.blob.mediaType, digest: meta.blob.digest, size: meta.blob.size }, file: store.blobPath(meta.blob.digest) };
  }
  const record = await readCompressed(store.root, layer.diffId, compression);
  if (record && (await store.hasBlob(record.digest))) {
    await noteLayerBlob(store.root, layer.diffId, record); // a record kept from before such notes
    return { kind: 'blob', desc: { mediaType: record.mediaType, digest: record.digest, size: record.size }, file: store.blobPath(record.digest) };
  }
  // An uncompressed import's tar is its blob; a layer strata built is regenerated from its snapshot.
  const source: CompressJob['source'] = meta.blob
    ? { kind: 'blob', path: store.blobPath(meta.blob.digest) }
    : { kind: 'snapshot', dir: store.layerDiffDir(layer.chainId), sourceDateEpoch: meta.sourceDateEpoch };
  return { kind: 'compress', layer, source };
}

async function pushLayer(ctx: Ctx, plan: LayerPlan, what: string): Promise<PushedBlob & { mediaType: string }> {
  if (plan.kind === 'blob') return { ...(await sendKnownBlob(ctx, plan.desc, plan.file)), kind: 'layer', mediaType: plan.desc.mediaType };
  return compressAndSend(ctx, plan.layer, plan.source, what);
}

/** HEAD, then a mount from a repository known to hold it, then an upload from `file`. */
async function sendKnownBlob(ctx: Ctx, d: Descriptor, file: string): Promise<Omit<PushedBlob, 'kind'>> {
  const { client, ref, store } = ctx;
  const result = await (async (): Promise<Omit<PushedBlob, 'kind'>> => {
    if (await client.hasBlob(d.digest)) return { digest: d.digest, size: d.size, uploaded: false };
    for (const from of await blobLocations(store.root, ref.registry, d.digest)) {
      if (from === ref.repository) continue;
      const mounted = await client.mountBlob(d.digest, from).catch((err: unknown) => {
        if (err instanceof RegistryError && err.userError) return false; // no right to read there: upload
        throw err;
      });
      if (mounted) return { digest: d.digest, size: d.size, uploaded: false, mountedFrom: from };
    }
    await upload(ctx, Spool.complete(file, d.size, d.digest), d.size);
    return { digest: d.digest, size: d.size, uploaded: true };
  })();
  await noteBlobLocation(store.root, ref.registry, d.digest, ref.repository);
  return result;
}

/**
 * Compresses a layer into a spool (a large one in a worker thread) while the upload reads it; once the
 * tar's diff_id is checked, the upload is finished under the compressed digest and the spool
 * kept as the layer's compressed blob.
 */
async function compressAndSend(ctx: Ctx, layer: LayerRef, source: CompressJob['source'], what: string): Promise<PushedBlob & { mediaType: string }> {
  const { store, ref, compression, opts } = ctx;
  const spool = new Spool(store.tempPath('push'));
  const abort = new AbortController();
  const onAbort = () => abort.abort(opts.signal?.reason);
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const producing = (async () => {
    const r = await compressLayer({ source, compression, spoolPath: spool.path }, layer.size, spool, abort.signal);
    if (r.diffId !== layer.diffId || r.size !== layer.size) {
      const err = new DigestMismatchError(`${what}: layer ${layer.diffId} read as ${r.diffId} (${r.size} bytes): the store's copy changed`);
      spool.fail(err);
      throw err;
    }
    spool.digest = r.digest;
    spool.advance(r.compressedSize);
    spool.finish();
    return { digest: r.digest, size: r.compressedSize };
  })();
  producing.catch(() => undefined); // awaited below; a failure also fails the spool's readers
  try {
    await spool.until(CHUNK_BYTES);
    let uploaded = true;
    if (spool.done && spool.written <= CHUNK_BYTES) {
      // Small: its digest is known before anything is sent.
      const { digest, size } = await producing;
      if (await ctx.client.hasBlob(digest)) uploaded = false;
      else await ctx.client.uploadBlob(digest, size, () => createReadStream(spool.path, { highWaterMark: READ_CHUNK }));
    } else {
      await upload(ctx, spool, layer.size);
    }
    const { digest, size } = await producing;
    const mediaType = compression === 'gzip' ? MEDIA_TYPE_LAYER_GZIP : MEDIA_TYPE_LAYER_ZSTD;
    await store.putBlobFile(spool.path, digest);
    await writeCompressed(store.root, layer.diffId, compression, { digest, size, mediaType });
    // This blob is now a form of the layer: an image pulled back from the registry names it,
    // and its commit's input check must know it is this layer's (engine/store/layerBlobs.ts).
    await noteLayerBlob(store.root, layer.diffId, { digest, size, mediaType });
    await noteBlobLocation(store.root, ref.registry, digest, ref.repository);
    return { digest, size, kind: 'layer', uploaded, mediaType };
  } catch (err) {
    abort.abort(err);
    await producing.catch(() => undefined);
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await fs.rm(spool.path, { force: true });
  }
}

/**
 * Uploads a spool in chunks as it grows, then puts it under its digest. A dropped
 * connection or a 5xx answer is resumed from the offset the registry reports; a session
 * the registry no longer knows is started again.
 */
async function upload(ctx: Ctx, spool: Spool, sizeHint: number): Promise<void> {
  const { client, opts } = ctx;
  if (spool.done && spool.written <= CHUNK_BYTES) {
    await client.uploadBlob(spool.digest!, spool.written, () => createReadStream(spool.path, { highWaterMark: READ_CHUNK }));
    return;
  }
  let session = await client.startUpload();
  let offset = 0;
  let failures = 0;
  for (;;) {
    await spool.until(offset + CHUNK_BYTES);
    // A complete spool goes in one PATCH to its end: each PATCH costs the registry a resume.
    const end = spool.done ? spool.written : Math.min(offset + CHUNK_BYTES, spool.written);
    if (end <= offset && spool.done) break;
    if (end <= offset) continue;
    try {
      const start = offset;
      session = await client.patchUpload(session, start, end - start, () => createReadStream(spool.path, { start, end: end - 1, highWaterMark: READ_CHUNK }));
      offset = end;
      failures = 0;
      opts.onProgress?.({ digest: spool.digest ?? ('' as Digest), bytes: offset, size: spool.done ? spool.written : sizeHint });
    } catch (err) {
      if (!resumable(err) || ++failures > MAX_RESUMES || opts.signal?.aborted) throw err;
      await new Promise((r) => setTimeout(r, Math.min(200 * 2 ** failures, 5_000)));
      const status = await client.uploadStatus(session);
      if (status && status.offset <= spool.written) {
        session = status.session;
        offset = status.offset;
      } else {
        session = await client.startUpload();
        offset = 0;
      }
    }
  }
  await client.finishUpload(session, spool.digest!);
}

/** A dropped connection, a timeout or a 5xx: the registry may have kept part of the chunk. */
function resumable(err: unknown): boolean {
  return err instanceof RegistryError && !err.userError;
}
