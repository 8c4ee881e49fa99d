// The images an archive says it holds, read from docker's manifest.json or an OCI index.json
// (nested indexes, the host's platform of a multi-platform one, ref names as skopeo, podman
// and containerd write them). Names and digests only: load.ts checks the bytes.
// https://github.com/opencontainers/image-spec/blob/main/image-index.md
import { asDigest, isDigest, sha256, type Digest } from '../digest.js';
import { UserInputError } from '../errors.js';
import { hostPlatform } from '../image/platform.js';
import { normalizeReference } from '../image/reference.js';
import { ANNOTATION_REF_NAME, MEDIA_TYPE_CONFIG, MEDIA_TYPE_MANIFEST, type Descriptor, type ImageIndex, type ImageManifest } from '../image/types.js';
import type { StagedArchive } from './stage.js';

/** Bounds on what an archive can make load read into memory or walk. */
export const MAX_JSON = 8 << 20;
export const MAX_LAYERS = 500;
const MAX_IMAGES = 1000;
const MAX_INDEX_DEPTH = 4;

/** One image as the archive describes it, not yet checked. */
export interface ImageSpec {
  /** Where the config is and, when the archive says, its digest. */
  config: { name: string; digest?: Digest };
  layers: { name: string; digest?: Digest; size?: number }[];
  tags: string[];
}

export function parseJson<T>(bytes: Buffer, name: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (err) {
    throw new UserInputError('ARCHIVE_INVALID', `load: ${name} is not valid JSON: ${(err as Error).message}`);
  }
}

/** The images the archive describes: from docker's manifest.json, else from the OCI index.json. */
export async function readSpecs(archive: StagedArchive): Promise<ImageSpec[]> {
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
