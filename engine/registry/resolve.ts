// Images a build names (FROM, COPY --from, RUN --mount from=): found in the store, or else
// resolved in a registry at planning time (manifest and config only, so the plan pins the
// digest), and their layers fetched later by ensureImage, before the stage needs them.
import { isDigest, type Digest } from '../digest.js';
import { NotFoundError, UserInputError } from '../errors.js';
import { hostPlatform } from '../image/platform.js';
import { parseReference } from '../image/reference.js';
import type { ImageConfigFile, ImageIndex, ImageManifest } from '../image/types.js';
import type { Store } from '../store/store.js';
import { selectManifest } from './manifest.js';
import { fetchLayers, resolveRemote, type PullOptions, type RemoteImage } from './pull.js';
import { pullSources, registryReference } from './reference.js';

export interface BuildImage {
  ref: string;
  manifestDigest: Digest;
  configDigest: Digest;
  config: ImageConfigFile;
}

/**
 * The image `ref` names: from the store unless `pull` (docker build --pull), else from its
 * registry, whose manifest and config are then stored (not its layers: ensureImage).
 */
export async function resolveBuildImage(store: Store, ref: string, opts: PullOptions & { pull?: boolean } = {}): Promise<BuildImage> {
  if (!opts.pull) {
    const local = await findLocal(store, ref, opts);
    if (local) return local;
  }
  if (/^(sha256:)?[0-9a-f]{12,64}$/.test(ref)) throw new UserInputError('IMAGE_NOT_FOUND', `find image: ${ref}: no image with that ID in the local store`);
  const remote = await resolveRemote(store, ref, opts);
  return { ref, manifestDigest: remote.manifestDigest, configDigest: remote.configDigest, config: remote.config };
}

/** A stored image for `ref` (a tag, an ID, or a digest whose manifest and config are stored). */
async function findLocal(store: Store, ref: string, opts: PullOptions): Promise<BuildImage | undefined> {
  let digest: string | undefined;
  try {
    digest = /^(sha256:)?[0-9a-f]{12,64}$/.test(ref) ? undefined : parseReference(ref).digest;
  } catch {
    return undefined; // not a valid name: the registry lookup says why
  }
  if (digest && isDigest(digest)) {
    if (!(await store.hasBlob(digest))) return undefined;
    let doc = await store.readJsonBlob<ImageManifest & ImageIndex>(digest);
    let manifestDigest: Digest = digest;
    if (Array.isArray(doc.manifests)) {
      manifestDigest = selectManifest(doc, opts.platform ?? hostPlatform(), `find image ${ref}`).digest;
      if (!(await store.hasBlob(manifestDigest))) return undefined;
      doc = await store.readJsonBlob<ImageManifest & ImageIndex>(manifestDigest);
    }
    const configDigest = doc.config?.digest;
    if (!configDigest || !(await store.hasBlob(configDigest))) return undefined;
    return { ref, manifestDigest, configDigest, config: await store.readJsonBlob<ImageConfigFile>(configDigest) };
  }
  try {
    const img = await store.findImage(ref);
    return img && { ref, manifestDigest: img.manifestDigest, configDigest: img.configDigest, config: img.config };
  } catch (err) {
    if (err instanceof NotFoundError) return undefined; // a tag whose layers are gone
    throw err;
  }
}

/**
 * Makes the image `manifestDigest` complete in the store: the layers it lacks are fetched
 * from `ref`'s registry (mirrors first for Docker Hub); a tag reference then names it, as
 * docker tags a base it pulled. Idempotent: returns 0 fetched layers when all were there.
 */
export async function ensureImage(store: Store, ref: string, manifestDigest: Digest, opts: PullOptions = {}): Promise<{ fetched: number }> {
  try {
    await store.loadImage(manifestDigest);
    return { fetched: 0 };
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }
  const parsed = parseReference(ref);
  const pinned = `${parsed.name}@${manifestDigest}`;
  // The plan stored manifest and config; a worker with another store fetches them by digest.
  let image: RemoteImage;
  if ((await store.hasBlob(manifestDigest)) && (await store.hasBlob((await store.readJsonBlob<ImageManifest>(manifestDigest)).config.digest))) {
    const manifest = await store.readJsonBlob<ImageManifest>(manifestDigest);
    const config = await store.readJsonBlob<ImageConfigFile>(manifest.config.digest);
    image = { reference: pinned, source: registryReference(pinned, opts.env), digest: manifestDigest, manifestDigest, manifest, configDigest: manifest.config.digest, config };
  } else {
    image = await resolveRemote(store, pinned, opts);
  }
  const sources = pullSources(registryReference(pinned, opts.env), opts.env);
  let fetched = 0;
  for (const source of sources) {
    try {
      fetched = (await fetchLayers(store, { ...image, source }, opts)).filter((l) => l.fetched).length;
      break;
    } catch (err) {
      if (source === sources[sources.length - 1] || opts.signal?.aborted) throw err;
    }
  }
  if (!parsed.digest) {
    const bytes = await store.readBlob(manifestDigest);
    await store.setTags([ref], { mediaType: image.manifest.mediaType, digest: manifestDigest, size: bytes.length });
  }
  return { fetched };
}
