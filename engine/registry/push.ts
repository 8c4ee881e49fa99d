// push: an image from the store to a registry — every blob the registry lacks, then the
// manifest under the tag.
//
// Layers go as the store keeps them, with the image's own manifest: layers strata committed
// as uncompressed tars (application/vnd.oci.image.layer.v1.tar, regenerated from their
// snapshots), imported or loaded ones as the blobs they came as. So the pushed manifest is
// byte for byte the local one: its digest is the same on both sides, no layer is compressed
// twice or kept a second time, and nothing needs a first pass to learn a gzip digest. The
// price is bandwidth and registry space for uncompressed layers; gzip on the way out is a
// later option (it changes the manifest, so the pushed digest would differ from the local).
import { PassThrough, pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { DigestStream, sha256, type Digest } from '../digest.js';
import { DigestMismatchError, EngineError, RegistryError } from '../errors.js';
import type { Descriptor, LayerRef, StoredImage } from '../image/types.js';
import { writeLayerTar } from '../layer/tar.js';
import type { Store } from '../store/store.js';
import { findCredentials } from './auth.js';
import { RegistryClient } from './client.js';
import { registryReference } from './reference.js';

export interface PushProgress {
  /** The blob being uploaded, and how far it got. */
  digest: Digest;
  bytes: number;
  size: number;
}

export interface PushedBlob {
  digest: Digest;
  size: number;
  kind: 'layer' | 'config';
  /** False when the registry already had it. */
  uploaded: boolean;
}

export interface PushResult {
  /** The reference as given, e.g. `127.0.0.1:5000/app:1`. */
  reference: string;
  /** The manifest's digest (the local one: the manifest is pushed as stored). */
  digest: Digest;
  size: number;
  blobs: PushedBlob[];
}

export interface PushOptions {
  onProgress?: (p: PushProgress) => void;
  signal?: AbortSignal;
  /** Where config.json is read from (tests); default $DOCKER_CONFIG or ~/.docker. */
  dockerConfig?: string;
}

/**
 * Pushes `image` to `target` (`host[:port]/repo:tag`). Blobs the repository has are skipped
 * (HEAD), the others uploaded one at a time, streamed from the store and verified against
 * their digests as they go; the manifest is put last, so the tag never names an incomplete
 * image. Idempotent: a second push uploads nothing.
 */
export async function pushImage(store: Store, image: StoredImage, target: string, opts: PushOptions = {}): Promise<PushResult> {
  const ref = registryReference(target);
  const what = `push ${target}`;
  const credentials = await findCredentials(ref.registry, opts.dockerConfig);
  const client = new RegistryClient(ref, what, credentials, opts.signal);
  const blobs: PushedBlob[] = [];

  const layerOf = new Map(image.layers.map((l) => [l.digest, l]));
  for (const d of image.manifest.layers) {
    if (blobs.some((b) => b.digest === d.digest)) continue;
    const layer = layerOf.get(d.digest);
    if (!layer) throw new EngineError('PUSH_LAYER_UNKNOWN', `${what}: the manifest lists layer ${d.digest}, which the image's config does not`);
    const uploaded = await pushBlob(client, d, opts, await layerSource(store, layer, d, what));
    blobs.push({ digest: d.digest, size: d.size, kind: 'layer', uploaded });
  }
  const config = image.manifest.config;
  const configUploaded = await pushBlob(client, config, opts, () => store.openBlob(config.digest));
  blobs.push({ digest: config.digest, size: config.size, kind: 'config', uploaded: configUploaded });

  const bytes = await store.readBlob(image.manifestDigest);
  const answered = await client.putManifest(ref.reference, image.manifest.mediaType, bytes);
  const digest = sha256(bytes);
  if (answered && answered !== digest) {
    throw new RegistryError(`${what}: registry ${ref.registry} stored the manifest as ${answered}, not ${digest}`);
  }
  return { reference: target, digest, size: bytes.length, blobs };
}

/** HEAD, then upload when missing; the bytes are hashed on the way and must match. */
async function pushBlob(client: RegistryClient, d: Descriptor, opts: PushOptions, open: () => Readable): Promise<boolean> {
  if (await client.hasBlob(d.digest)) return false;
  let check = new DigestStream();
  const mismatch = () =>
    check.writableFinished && (check.digest() !== d.digest || check.size !== d.size)
      ? new DigestMismatchError(`push blob: ${d.digest} was read as ${check.digest()} (${check.size} bytes): the store's copy changed`)
      : undefined;
  try {
    await client.uploadBlob(d.digest, d.size, () => {
      // Called again when the registry asks for a login midway: each attempt hashes anew.
      check = new DigestStream();
      const counted = new ProgressCounter(d, opts.onProgress);
      // A failing source (a snapshot that cannot be read) destroys the last stream, which
      // aborts the upload with that error.
      pipeline(open(), check, counted, () => undefined);
      return counted;
    });
  } catch (err) {
    // The registry refuses wrong bytes too; our own reading says why.
    throw mismatch() ?? err;
  }
  const wrong = mismatch();
  if (wrong) throw wrong;
  return true;
}

/**
 * How to read a layer's bytes as the manifest lists them: the blob it came as, or (for a
 * layer strata committed) the tar regenerated from its snapshot.
 */
async function layerSource(store: Store, layer: LayerRef, d: Descriptor, what: string): Promise<() => Readable> {
  const meta = await store.readLayerMeta(layer.chainId);
  if (meta.blob?.digest === d.digest) return () => store.openBlob(d.digest);
  if (d.digest !== layer.diffId) throw new EngineError('PUSH_LAYER_SOURCE', `${what}: layer ${d.digest} is neither a stored blob nor the snapshot's tar`);
  return () => {
    const through = new PassThrough();
    writeLayerTar(store.layerDiffDir(layer.chainId), through, { sourceDateEpoch: meta.sourceDateEpoch }).catch((err: Error) => through.destroy(err));
    return through;
  };
}

/** Reports bytes as they pass, at most once per MiB. */
class ProgressCounter extends Transform {
  private bytes = 0;
  private reported = 0;
  constructor(
    private readonly d: Descriptor,
    private readonly report?: (p: PushProgress) => void,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.report && this.bytes - this.reported >= 1 << 20) {
      this.reported = this.bytes;
      this.report({ digest: this.d.digest, bytes: this.bytes, size: this.d.size });
    }
    cb(null, chunk);
  }
}
