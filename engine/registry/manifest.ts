// Manifests as registries serve them: OCI image manifests and indexes, docker's schema 2
// manifests and manifest lists. Parsing checks the shape of everything strata later reads
// (digests, sizes, media types), and picks an index's entry for a platform.
// https://github.com/opencontainers/image-spec/blob/main/manifest.md
// https://github.com/opencontainers/image-spec/blob/main/image-index.md
import { isDigest } from '../digest.js';
import { RegistryError, UserInputError } from '../errors.js';
import { formatPlatform, type Platform } from '../image/platform.js';
import { MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, type Descriptor, type ImageIndex, type ImageManifest } from '../image/types.js';

export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
export const DOCKER_LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
const DOCKER_SCHEMA1 = ['application/vnd.docker.distribution.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v1+prettyjws'];

/** What a pull asks for, best first. */
export const MANIFEST_ACCEPT = [MEDIA_TYPE_INDEX, DOCKER_MANIFEST_LIST, MEDIA_TYPE_MANIFEST, DOCKER_MANIFEST];
/** Manifests and configs are read whole into memory: a bigger answer is refused. */
export const MAX_MANIFEST_BYTES = 4 << 20;
export const MAX_CONFIG_BYTES = 4 << 20;
/** More layers than any real image has (docker's own limit is 127 overlay layers). */
const MAX_LAYERS = 1000;
const MAX_INDEX_ENTRIES = 1000;

export type ParsedManifest = { kind: 'index'; mediaType: string; index: ImageIndex } | { kind: 'image'; mediaType: string; manifest: ImageManifest };

/**
 * Reads a manifest the registry sent for `what`. The media type comes from the document,
 * else from the Content-Type header; schema 1 and unknown types are refused.
 */
export function parseManifest(bytes: Buffer, headerType: string, what: string): ParsedManifest {
  const bad = (detail: string) => new RegistryError(`${what}: the registry sent an invalid manifest: ${detail}`, { permanent: true });
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw bad('not JSON');
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw bad('not a JSON object');
  const mediaType = typeof doc.mediaType === 'string' ? doc.mediaType : headerType;
  if (DOCKER_SCHEMA1.includes(mediaType) || doc.schemaVersion === 1) {
    throw new RegistryError(`${what}: the registry serves this image only as a docker schema 1 manifest, which strata does not read`, { permanent: true });
  }
  if (doc.schemaVersion !== 2) throw bad('schemaVersion is not 2');
  const isIndex = mediaType === MEDIA_TYPE_INDEX || mediaType === DOCKER_MANIFEST_LIST || (!mediaType && Array.isArray(doc.manifests));
  if (isIndex) {
    if (!Array.isArray(doc.manifests)) throw bad('an index without manifests');
    if (doc.manifests.length > MAX_INDEX_ENTRIES) throw bad(`more than ${MAX_INDEX_ENTRIES} entries`);
    doc.manifests.forEach((d, i) => checkDescriptor(d, `manifests[${i}]`, bad));
    return { kind: 'index', mediaType: mediaType || MEDIA_TYPE_INDEX, index: doc as unknown as ImageIndex };
  }
  if (mediaType && mediaType !== MEDIA_TYPE_MANIFEST && mediaType !== DOCKER_MANIFEST) throw bad(`unknown media type ${JSON.stringify(mediaType.slice(0, 100))}`);
  checkDescriptor(doc.config, 'config', bad);
  if (!Array.isArray(doc.layers)) throw bad('no layers');
  if (doc.layers.length > MAX_LAYERS) throw bad(`more than ${MAX_LAYERS} layers`);
  doc.layers.forEach((d, i) => checkDescriptor(d, `layers[${i}]`, bad));
  return { kind: 'image', mediaType: mediaType || MEDIA_TYPE_MANIFEST, manifest: { ...(doc as unknown as ImageManifest), mediaType: mediaType || MEDIA_TYPE_MANIFEST } };
}

function checkDescriptor(d: unknown, where: string, bad: (detail: string) => Error): void {
  const x = d as Partial<Descriptor> | undefined;
  if (!x || typeof x !== 'object') throw bad(`${where} is not a descriptor`);
  if (typeof x.digest !== 'string' || !isDigest(x.digest)) throw bad(`${where} has no sha256 digest`);
  if (typeof x.size !== 'number' || !Number.isSafeInteger(x.size) || x.size < 0) throw bad(`${where} has no valid size`);
  if (typeof x.mediaType !== 'string') throw bad(`${where} has no media type`);
}

/** `arm64` entries without a variant are v8, as containerd's matcher has it. */
function variantOf(p: { architecture: string; variant?: string }): string {
  if (p.variant) return p.variant;
  return p.architecture === 'arm64' ? 'v8' : '';
}

/**
 * The index entry for `want`: same os and architecture; with a variant asked for, that
 * variant (arm64's default v8 counts as none), else the entry without one, then any. Entries
 * that are not images (attestations, `unknown/unknown`) never match.
 */
export function selectManifest(index: ImageIndex, want: Platform, what: string): Descriptor {
  const images = index.manifests.filter((d) => d.mediaType === MEDIA_TYPE_MANIFEST || d.mediaType === DOCKER_MANIFEST);
  const same = images.filter((d) => d.platform && d.platform.os === want.os && d.platform.architecture === want.architecture);
  const wanted = variantOf(want);
  const pick = same.find((d) => variantOf(d.platform!) === wanted) ?? (want.variant ? undefined : same[0]);
  if (pick) return pick;
  const offered = images.map((d) => (d.platform ? formatPlatform(d.platform) : 'unknown')).join(', ') || 'none';
  throw new UserInputError('PLATFORM_NOT_FOUND', `${what}: no manifest for ${formatPlatform(want)} in the index (it has: ${offered})`);
}
