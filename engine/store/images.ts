// The images of the store as docker shows them: one record per image ID (the config digest),
// with every tag and digest reference that names it, tagged or not. index.json is the record:
// a tag is an entry with a ref.name, an untagged ("dangling") image an entry without one, an
// intermediate image (a build's state after a step) an untagged entry marked as such.
import { asDigest, chainId, digestHex, sha256, type Digest } from '../digest.js';
import { UserInputError } from '../errors.js';
import { ANNOTATION_INTERMEDIATE, ANNOTATION_REF_NAME, ANNOTATION_TAG_TIME, type ImageConfigFile, type ImageIndex, type ImageManifest } from '../image/types.js';
import { normalizeReference, parseReference } from '../image/reference.js';
import type { Store } from './store.js';

export interface ImageRecord {
  /** The image ID: the digest of the config. */
  id: Digest;
  /** Manifests in index.json whose config is this one; the first tagged one leads. */
  manifests: Digest[];
  /** `name:tag` references, sorted. */
  tags: string[];
  /** `name@sha256:…` references, sorted. */
  digests: string[];
  config: ImageConfigFile;
  /** chainIDs of the layers, bottom first. */
  chain: Digest[];
  /** When a tag was last set on it (undefined: never, or before strata recorded it). */
  lastTagTime?: string;
  /** Only a build's step made it (docker's intermediate images): hidden unless `images -a`. */
  intermediate: boolean;
}

/** Every image the store knows, tagged or not, newest (by config `created`) first. */
export async function listImages(store: Store): Promise<ImageRecord[]> {
  return imagesOf(store, await store.readIndex());
}

/** The image records of `index` (read from the store, or being changed under its lock). */
export async function imagesOf(store: Store, index: ImageIndex): Promise<ImageRecord[]> {
  const configOf = new Map<Digest, Digest>();
  const byId = new Map<Digest, ImageRecord>();
  const plain = new Set<ImageRecord>();
  for (const d of index.manifests) {
    let id = configOf.get(d.digest);
    if (!id) {
      const manifest = await store.readJsonBlob<ImageManifest>(d.digest).catch(() => undefined);
      if (!manifest) continue; // a manifest blob gone missing: nothing to show
      id = asDigest(manifest.config.digest);
      configOf.set(d.digest, id);
    }
    let rec = byId.get(id);
    if (!rec) {
      const config = await store.readJsonBlob<ImageConfigFile>(id).catch(() => undefined);
      if (!config) continue;
      rec = { id, manifests: [], tags: [], digests: [], config, chain: chainOf(config), intermediate: false };
      byId.set(id, rec);
    }
    const name = d.annotations?.[ANNOTATION_REF_NAME];
    if (name) {
      if (name.includes('@')) rec.digests.push(name);
      else rec.tags.push(name);
      if (!rec.manifests.includes(d.digest)) rec.manifests.unshift(d.digest);
      const t = d.annotations?.[ANNOTATION_TAG_TIME];
      if (t && (!rec.lastTagTime || t > rec.lastTagTime)) rec.lastTagTime = t;
    } else {
      if (!rec.manifests.includes(d.digest)) rec.manifests.push(d.digest);
      if (d.annotations?.[ANNOTATION_INTERMEDIATE]) rec.intermediate = true;
      else plain.add(rec);
    }
  }
  const out = [...byId.values()];
  for (const r of out) {
    r.tags.sort();
    r.digests.sort();
    // A name, or an untagged entry a build committed, makes it an image of its own.
    if (r.tags.length > 0 || r.digests.length > 0 || plain.has(r)) r.intermediate = false;
  }
  return out.sort((a, b) => createdMs(b) - createdMs(a) || a.id.localeCompare(b.id));
}

/** chainIDs of a config's layers, bottom first. */
export function chainOf(config: ImageConfigFile): Digest[] {
  const out: Digest[] = [];
  let parent: Digest | undefined;
  for (const diffId of config.rootfs?.diff_ids ?? []) {
    parent = chainId(parent, diffId);
    out.push(parent);
  }
  return out;
}

export function createdMs(r: ImageRecord): number {
  const t = r.config.created ? Date.parse(r.config.created) : NaN;
  return Number.isNaN(t) ? 0 : t;
}

/**
 * True for an image no tag and no digest reference names (docker's `<none>:<none>`) that is
 * not an intermediate image: what `images` shows untagged and `image prune` removes.
 */
export function isDangling(r: ImageRecord): boolean {
  return r.tags.length === 0 && r.digests.length === 0 && !r.intermediate;
}

/**
 * Keys of an image's history prefixes: keys[i] names its first i+1 rows and the layers under
 * them. An image builds on another (docker's parent, which strata does not record) when the
 * other's last key is one of its own earlier keys.
 */
function historyKeys(r: ImageRecord): string[] {
  const keys: string[] = [];
  let key = '';
  let layers = 0;
  for (const h of r.config.history ?? []) {
    if (!h.empty_layer) layers++;
    key = sha256(`${key}\n${JSON.stringify([h.created ?? '', h.created_by ?? '', !!h.empty_layer, layers > 0 ? (r.chain[layers - 1] ?? '') : ''])}`);
    keys.push(key);
  }
  return keys;
}

/** The images of `candidates` that no image of `others` builds on. */
export function notBuiltOn(candidates: ImageRecord[], others: ImageRecord[]): ImageRecord[] {
  const below = new Set<string>();
  for (const o of others) for (const k of historyKeys(o).slice(0, -1)) below.add(k);
  return candidates.filter((c) => {
    const keys = historyKeys(c);
    return keys.length === 0 || !below.has(keys[keys.length - 1]!);
  });
}

/** The intermediate images `image` builds on, nearest first. */
export function intermediateAncestors(image: ImageRecord, images: ImageRecord[]): ImageRecord[] {
  const mine = historyKeys(image).slice(0, -1);
  const at = new Map(mine.map((k, i) => [k, i]));
  const found: { r: ImageRecord; i: number }[] = [];
  for (const r of images) {
    if (!r.intermediate || r === image) continue;
    const keys = historyKeys(r);
    const i = keys.length > 0 ? at.get(keys[keys.length - 1]!) : undefined;
    if (i !== undefined) found.push({ r, i });
  }
  return found.sort((a, b) => b.i - a.i).map((f) => f.r);
}

export interface ResolvedRef {
  image: ImageRecord;
  /** The reference the user named (`name:tag` or `name@digest`); undefined when named by ID. */
  ref?: string;
}

/**
 * Finds the image `input` names, in docker's order: a full ID, a tag or digest reference,
 * then a unique ID prefix. Undefined when nothing matches; IMAGE_AMBIGUOUS when a prefix
 * names several images.
 */
export function resolveRef(images: ImageRecord[], input: string): ResolvedRef | undefined {
  const full = /^(?:sha256:)?([0-9a-f]{64})$/.exec(input);
  if (full) {
    const image = images.find((i) => digestHex(i.id) === full[1]);
    return image ? { image } : undefined;
  }
  let name: string | undefined;
  try {
    name = normalizeReference(input);
  } catch {
    name = undefined;
  }
  if (name !== undefined) {
    const image = images.find((i) => i.tags.includes(name!) || i.digests.includes(name!));
    if (image) return { image, ref: name };
    // `name@digest` of a manifest the store holds, under whatever name.
    const at = name.indexOf('@');
    if (at >= 0) {
      const d = name.slice(at + 1);
      const hit = images.find((i) => i.manifests.includes(d as Digest));
      if (hit) return { image: hit };
    }
  }
  const prefix = /^(?:sha256:)?([0-9a-f]+)$/.exec(input)?.[1];
  if (prefix === undefined) return undefined;
  const hits = images.filter((i) => digestHex(i.id).startsWith(prefix));
  if (hits.length > 1) throw new UserInputError('IMAGE_AMBIGUOUS', `find image: ${input}: several images have IDs starting with it`);
  return hits[0] ? { image: hits[0] } : undefined;
}

/** A user error naming a reference nothing in the store matches, in docker's words. */
export function noSuchImage(input: string): UserInputError {
  let shown = input;
  try {
    if (!/^(?:sha256:)?[0-9a-f]+$/.test(input)) shown = normalizeReference(input);
  } catch {
    /* shown as typed */
  }
  return new UserInputError('IMAGE_NOT_FOUND', `No such image: ${shown}`);
}

/** `docker tag SOURCE TARGET`: TARGET (`name[:tag]`, `:latest` by default) names SOURCE's image. */
export async function tagImage(store: Store, source: string, target: string): Promise<void> {
  const name = normalizeReference(target);
  if (name.includes('@')) throw new UserInputError('TAG_INVALID', `tag: refusing to create a tag with a digest reference: ${target}`);
  const hit = resolveRef(await listImages(store), source);
  if (!hit) throw noSuchImage(source);
  const manifest = hit.image.manifests[0]!;
  const size = (await store.readBlob(manifest)).length;
  const mediaType = ((await store.readJsonBlob<ImageManifest>(manifest)).mediaType as string | undefined) ?? 'application/vnd.oci.image.manifest.v1+json';
  await store.setTags([name], { mediaType, digest: manifest, size });
}

/**
 * Records that a registry holds the image of `manifest` as `repository@digest` (what docker
 * lists as RepoDigests after a push or pull). The entry points at the local manifest, so it
 * names the image whatever the registry's manifest bytes are.
 */
export async function recordRepoDigest(store: Store, manifest: Digest, reference: string, digest: Digest): Promise<void> {
  const name = `${parseReference(reference).name}@${digest}`;
  const size = (await store.readBlob(manifest)).length;
  const mediaType = ((await store.readJsonBlob<ImageManifest>(manifest)).mediaType as string | undefined) ?? 'application/vnd.oci.image.manifest.v1+json';
  await store.updateIndex((index) => {
    if (index.manifests.some((d) => d.annotations?.[ANNOTATION_REF_NAME] === name)) return;
    index.manifests = index.manifests.filter((d) => !(d.digest === manifest && !d.annotations?.[ANNOTATION_REF_NAME]));
    index.manifests.push({ mediaType, digest: manifest, size, annotations: { [ANNOTATION_REF_NAME]: name } });
  });
}
