// import: a rootfs tar (plain or compressed) becomes a one-layer image, as `docker import`.
// The blob is kept as it came, next to its unpacked snapshot.
import { hostPlatform, type Platform } from '../image/platform.js';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { DigestStream, type Digest } from '../digest.js';
import { DockerfileError, EngineError, UserInputError } from '../errors.js';
import { extractTar } from '../fsutil/extract.js';
import { parseDockerfile } from '../dockerfile/parse.js';
import { commitImage } from '../image/commit.js';
import { MEDIA_TYPE_LAYER, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_ZSTD, type ContainerConfig, type ImageState, type LayerRef } from '../image/types.js';
import { planDockerfile } from '../plan/planner.js';
import type { Store } from '../store/store.js';
import { asEngineError } from '../inputErrors.js';
import { decompressed, type Compression } from './compression.js';

/** The instructions `docker import --change` accepts. */
const CHANGE_KINDS = new Set(['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'ONBUILD', 'USER', 'VOLUME', 'WORKDIR', 'STOPSIGNAL']);

export interface ImportOptions {
  tags: string[];
  /** Dockerfile instructions applied to the config, e.g. `CMD ["sh"]`. */
  changes: string[];
  /** What the history comment names as the source (`-` for stdin, or the file name). */
  source: string;
  sourceDateEpoch?: number;
  /** The platform the config records (`--platform`); the host's by default. */
  platform?: Platform;
}

/** Folds `--change` lines into a config, with docker's rules for each instruction. */
export async function configFromChanges(changes: string[]): Promise<ContainerConfig> {
  if (changes.length === 0) return {};
  const df = parseDockerfile(['FROM scratch', ...changes].join('\n'), '--change');
  for (const inst of df.instructions.slice(1)) {
    if (!CHANGE_KINDS.has(inst.kind)) {
      throw new DockerfileError({ file: '--change', line: inst.range.startLine - 1 }, `${inst.kind} is not a valid change command`);
    }
  }
  const plan = await planDockerfile(df, {
    buildArgs: {},
    resolveImage: () => Promise.reject(new Error('unreachable: FROM scratch')),
  });
  let config: ContainerConfig = {};
  for (const step of plan.stages[0]!.steps) if (step.kind === 'config') config = { ...config, ...step.patch };
  return config;
}

const MEDIA_TYPES: Partial<Record<Compression, string>> = { none: MEDIA_TYPE_LAYER, gzip: MEDIA_TYPE_LAYER_GZIP, zstd: MEDIA_TYPE_LAYER_ZSTD };

/** Stores `src` as a layer blob and its unpacked snapshot; returns the layer. */
export async function importLayer(store: Store, src: Readable, parent?: Digest, opts: { refuseImageArchive?: boolean } = {}): Promise<LayerRef> {
  let blob = await store.putBlobStream(src);
  const staging = await store.makeTempDir('import');
  try {
    const diff = path.join(staging, 'diff');
    await fs.mkdir(diff, { mode: 0o755 });
    // One pass: the extractor reads its input to the end, so the diff_id (the digest of the
    // whole uncompressed stream) is hashed on the way. OCI whiteouts become overlay ones, so
    // the snapshot works as a lowerdir.
    const { compression, stream } = await decompressed(store.openBlob(blob.digest));
    const hasher = new DigestStream();
    stream.on('error', (e) => hasher.destroy(e));
    try {
      await extractTar(stream.pipe(hasher), diff, { whiteouts: 'overlay' });
    } catch (err) {
      // Errors the archive causes (a name too long, a truncated gzip) are the user's; other
      // engine and system errors (ENOSPC, EIO) pass; a parse error means a bad tar.
      const mapped = asEngineError(err, store.root);
      if (mapped !== err || err instanceof EngineError || (err as NodeJS.ErrnoException).code !== undefined) throw mapped;
      throw new UserInputError('INVALID_TAR', `import: not a valid tar archive: ${(err as Error).message}`, { cause: err });
    }
    const diffId = hasher.digest();
    if (opts.refuseImageArchive && (await isImageArchive(diff))) {
      // The blob is that archive, which nothing else can use: it goes too.
      await store.removeBlob(blob.digest);
      throw new UserInputError('IMPORT_IMAGE_ARCHIVE', 'import: this is an image archive (docker save, or an OCI layout), not a root filesystem: load it with strata load -i FILE');
    }
    let mediaType = MEDIA_TYPES[compression];
    if (!mediaType) {
      // bzip2 and xz have no OCI media type: keep the uncompressed tar instead.
      blob = await store.putBlobStream((await decompressed(store.openBlob(blob.digest))).stream, diffId);
      mediaType = MEDIA_TYPE_LAYER;
    }
    const chainId = await store.commitLayer(diff, { diffId, parent, size: hasher.size, blob: { digest: blob.digest, mediaType, size: blob.size } });
    return { diffId, chainId, size: hasher.size, digest: blob.digest, mediaType, blobSize: blob.size };
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
}

/** `docker import`: one layer from `src`, a config from `changes`, tagged. */
export async function importRootfs(store: Store, src: Readable, opts: ImportOptions): Promise<{ imageId: Digest; manifestDigest: Digest }> {
  const config = await configFromChanges(opts.changes);
  const layer = await importLayer(store, src, undefined, { refuseImageArchive: true });
  const state: ImageState = {
    ...(opts.platform ?? hostPlatform()),
    config,
    layers: [layer],
    history: [{ created_by: '', comment: `Imported from ${opts.source}` }],
  };
  return commitImage(store, state, { tags: opts.tags, sourceDateEpoch: opts.sourceDateEpoch });
}

/**
 * True when an unpacked tar is an image archive rather than a rootfs: docker's manifest.json
 * (a list of images with a Config) or an OCI layout's oci-layout file at its root.
 */
async function isImageArchive(root: string): Promise<boolean> {
  const read = async (name: string): Promise<unknown> => {
    const st = await fs.lstat(path.join(root, name)).catch(() => undefined);
    if (!st?.isFile() || st.size > 1 << 20) return undefined;
    try {
      return JSON.parse(await fs.readFile(path.join(root, name), 'utf8'));
    } catch {
      return undefined;
    }
  };
  const layout = (await read('oci-layout')) as { imageLayoutVersion?: unknown } | undefined;
  if (typeof layout?.imageLayoutVersion === 'string') return true;
  const manifest = await read('manifest.json');
  return Array.isArray(manifest) && manifest.some((m) => typeof (m as { Config?: unknown })?.Config === 'string');
}
