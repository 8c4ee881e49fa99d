// The remote store (STRATA_REMOTE=REGISTRY/REPO): one OCI registry repository through which
// workers and clients that share no disk hand each other build contexts, layers, images and
// instruction cache entries. Everything travels by digest and is checked on arrival.
//
// The layout in the repository (docs/store.md, "Remote store"):
// - raw blobs by digest: contexts, Dockerfiles, image configs and manifests (uploaded as they
//   are in the store; fetched only by digest, and verified);
// - `layer-<chainID hex>`: an OCI manifest whose config (LAYER_CONFIG_TYPE) is
//   `{"diffId","parent"?}` and whose one layer is the layer's compressed blob. A chain is
//   fetched by walking the parents; chainID(parent, diffId) must give the tag's chainID, and
//   the blob must unpack to diffId (the pull's one extraction path checks it);
// - `cache-<key hex>`: an OCI manifest whose config (CACHE_CONFIG_TYPE) is the cache entry's
//   JSON and whose layer, when the entry names one, is that layer's blob. An entry is taken
//   only when its key is the tag's and its layer stacks on the build's parent.
import { promises as fs } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { canonicalJson, chainId as computeChainId, digestHex, isDigest, sha256, type Digest } from '../digest.js';
import { NotFoundError, RegistryError, UserInputError } from '../errors.js';
import { MEDIA_TYPE_LAYER, MEDIA_TYPE_MANIFEST, type Descriptor, type ImageConfigFile, type ImageManifest, type LayerRef, type StoredImage } from '../image/types.js';
import { readCacheEntry, writeCacheEntry, type CacheEntry } from '../cache/entries.js';
import type { MadeRecords } from '../store/intermediate.js';
import type { Store } from '../store/store.js';
import { findCredentials } from '../registry/auth.js';
import { RegistryClient } from '../registry/client.js';
import { MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES } from '../registry/manifest.js';
import { fetchLayer } from '../registry/pull.js';
import { pushImage } from '../registry/push.js';
import { isRepositoryName, registryReference, type RegistryReference } from '../registry/reference.js';

export const LAYER_CONFIG_TYPE = 'application/vnd.dev.strata.layer.v1+json';
export const CACHE_CONFIG_TYPE = 'application/vnd.dev.strata.cache.v1+json';
export const MADE_CONFIG_TYPE = 'application/vnd.dev.strata.made.v1+json';
/** A chain longer than this is refused: a remote could otherwise walk us through parents forever. */
const MAX_CHAIN = 1000;
/** Cache entries asked for at once by a look-up. */
const PREFETCH_CONCURRENCY = 4;
/** A raw blob (a context) bigger than this is refused on arrival. */
const MAX_RAW_BLOB_BYTES = 64 * 2 ** 30;

export interface RemoteOptions {
  /** Where config.json is read from; default $DOCKER_CONFIG or ~/.docker. */
  dockerConfig?: string;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

/** The tags a layer and a cache entry are kept under. */
export const layerTag = (chain: Digest) => `layer-${digestHex(chain)}`;
export const cacheTag = (key: Digest) => `cache-${digestHex(key)}`;
export const madeTag = (sameStep: Digest) => `made-${digestHex(sameStep)}`;

/** The remote store named by STRATA_REMOTE, or undefined when it is not set. */
export function remoteFromEnv(env: NodeJS.ProcessEnv = process.env): RemoteStore | undefined {
  const v = env.STRATA_REMOTE?.trim();
  return v ? new RemoteStore(v, { env }) : undefined;
}

type Artifact = { manifest: ImageManifest; config: Buffer };

export class RemoteStore {
  private readonly ref: RegistryReference;
  /** Cache entry manifests a look-up asked for ahead (prefetchCacheEntries), by key. */
  private readonly ahead = new Map<Digest, Promise<Artifact | undefined>>();

  /** `name` is `REGISTRY/REPO`, without tag or digest. */
  constructor(
    readonly name: string,
    private readonly opts: RemoteOptions = {},
  ) {
    if (!isRepositoryName(name))
      throw new UserInputError('REMOTE_INVALID', `remote store: STRATA_REMOTE must be REGISTRY/REPOSITORY without tag or digest, got ${JSON.stringify(name)}`);
    this.ref = registryReference(`${name}:latest`, opts.env);
  }

  withSignal(signal: AbortSignal | undefined): RemoteStore {
    return new RemoteStore(this.name, { ...this.opts, signal });
  }

  // ---- raw blobs (contexts, Dockerfiles, image configs and manifests) ----

  /** Uploads the store's blobs the repository lacks. */
  async putBlobs(store: Store, digests: (Digest | undefined)[]): Promise<void> {
    const client = await this.client('pull,push', 'remote store: upload');
    for (const d of new Set(digests)) {
      if (!d || (await client.hasBlob(d))) continue;
      const size = (await fs.stat(store.blobPath(d))).size;
      await client.uploadBlob(d, size, () => store.openBlob(d));
    }
  }

  /** Fetches the blobs the store lacks, each checked against its digest. */
  async getBlobs(store: Store, digests: (Digest | undefined)[]): Promise<void> {
    let client: RegistryClient | undefined;
    for (const d of new Set(digests)) {
      if (!d || (await store.hasBlob(d))) continue;
      client ??= await this.client('pull', 'remote store: fetch');
      const src = await this.missing(d, () => client!.openBlob(d), `blob ${d}`);
      await store.putBlobStream(src.pipe(new ByteLimit(MAX_RAW_BLOB_BYTES, `remote store: blob ${d}`)), d);
    }
  }

  // ---- images ----

  /** Makes an image's manifest, config and layers available to other machines. */
  async putImage(store: Store, manifestDigest: Digest): Promise<void> {
    const image = await store.loadImage(manifestDigest);
    await this.putLayers(
      store,
      image.layers.map((l) => l.chainId),
    );
    await this.putBlobs(store, [image.configDigest, manifestDigest]);
  }

  /** Ensures an image is whole in the store: its manifest, config and every layer of its chain. */
  async getImage(store: Store, manifestDigest: Digest): Promise<void> {
    await this.getBlobs(store, [manifestDigest]);
    const manifest = parseJson<ImageManifest>(await store.readBlob(manifestDigest), `manifest ${manifestDigest}`);
    const config = manifest?.config?.digest;
    if (typeof config !== 'string' || !isDigest(config)) throw this.corrupt(`manifest ${manifestDigest} names no config digest`);
    await this.getBlobs(store, [config]);
    const ids = parseJson<ImageConfigFile>(await store.readBlob(config), `config ${config}`)?.rootfs?.diff_ids;
    if (!Array.isArray(ids) || !ids.every((d) => typeof d === 'string' && isDigest(d))) throw this.corrupt(`config ${config} has no list of diff_ids`);
    let top: Digest | undefined;
    for (const id of ids) top = computeChainId(top, id);
    await this.getLayers(store, [top]);
  }

  // ---- layers ----

  /** Pushes each layer (its compressed blob, made from the snapshot once and kept) under `layer-<chainID>`. */
  async putLayers(store: Store, chains: (Digest | undefined)[]): Promise<void> {
    for (const chain of new Set(chains)) {
      if (!chain) continue;
      const meta = await store.readLayerMeta(chain);
      const config = { diffId: meta.diffId, ...(meta.parent ? { parent: meta.parent } : {}) };
      await this.pushArtifact(store, layerTag(chain), LAYER_CONFIG_TYPE, Buffer.from(canonicalJson(config)), await localLayerRef(store, chain));
    }
  }

  /** Pushes each layer of the chains ending at `tops`, parents included (what getLayers walks on another machine). */
  async putChains(store: Store, tops: (Digest | undefined)[]): Promise<void> {
    const chains: Digest[] = [];
    for (const top of new Set(tops)) chains.push(...(await store.chainOf(top)));
    await this.putLayers(store, chains);
  }

  /** Ensures each chain ending at one of `tops` is in the store, fetching the missing layers bottom first. */
  async getLayers(store: Store, tops: (Digest | undefined)[]): Promise<void> {
    for (const top of new Set(tops)) {
      const missing: { chain: Digest; diffId: Digest; parent?: Digest; desc: Descriptor }[] = [];
      for (let cur = top; cur && !(await store.hasLayer(cur));) {
        if (missing.length >= MAX_CHAIN) throw this.corrupt(`layer ${top} has more than ${MAX_CHAIN} layers below it`);
        const art = await this.getArtifact(layerTag(cur), LAYER_CONFIG_TYPE);
        if (!art) throw new NotFoundError('LAYER_NOT_FOUND', `remote store: layer ${cur} is neither in this store nor in ${this.name}`, false);
        const c = parseJson<{ diffId?: unknown; parent?: unknown }>(art.config, `layer ${cur}`);
        const diffId = c?.diffId;
        const parent = c?.parent;
        if (typeof diffId !== 'string' || !isDigest(diffId) || (parent !== undefined && (typeof parent !== 'string' || !isDigest(parent))))
          throw this.corrupt(`layer ${cur}: its record is not {diffId, parent}`);
        if (computeChainId(parent as Digest | undefined, diffId) !== cur) throw this.corrupt(`layer ${cur}: its record names another chain`);
        if (art.manifest.layers.length !== 1) throw this.corrupt(`layer ${cur}: its manifest lists ${art.manifest.layers.length} blobs, not 1`);
        missing.push({ chain: cur, diffId, parent: parent as Digest | undefined, desc: art.manifest.layers[0]! });
        cur = parent as Digest | undefined;
      }
      const client = missing.length > 0 ? await this.client('pull', 'remote store: fetch') : undefined;
      for (const m of missing.reverse()) {
        if (await store.hasLayer(m.chain)) continue;
        await fetchLayer(store, async () => client!, m.desc, m.diffId, m.parent, `remote store: fetch layer ${m.chain}`, { signal: this.opts.signal });
      }
    }
  }

  // ---- instruction cache entries ----

  /** Pushes the store's entry of `key` (with its layer's blob) under `cache-<key>`. */
  async putCacheEntry(store: Store, key: Digest): Promise<void> {
    const entry = await readCacheEntry(store, key);
    if (entry) await this.putEntry(store, entry);
  }

  /** Pushes `entry` (its layer must be stored) under `cache-<key>`: `--cache-to` exports entries that may be in no local index. */
  async putEntry(store: Store, entry: CacheEntry): Promise<void> {
    const key = entry.key;
    const layer = entry.layer ? await localLayerRef(store, entry.layer.chainId) : undefined;
    await this.pushArtifact(store, cacheTag(key), CACHE_CONFIG_TYPE, Buffer.from(JSON.stringify(entry)), layer);
  }

  /**
   * Starts asking for the entries of `keys`, a few at a time, so a look-up that goes through
   * them in order (getCacheEntry) waits for one round trip, not one per step.
   */
  prefetchCacheEntries(keys: Digest[]): void {
    const queue = keys.filter((k) => !this.ahead.has(k));
    const next = (): void => {
      const key = queue.shift();
      if (!key) return;
      const p = this.getArtifact(cacheTag(key), CACHE_CONFIG_TYPE);
      this.ahead.set(key, p);
      p.catch(() => undefined).finally(next);
    };
    for (let i = 0; i < PREFETCH_CONCURRENCY; i++) next();
  }

  /**
   * On a local miss: fetches the remote entry of `key` when it serves a state whose top layer
   * is `parentTop`, with its layer, and writes it into the store. False when there is none.
   */
  async getCacheEntry(store: Store, key: Digest, parentTop: Digest | undefined): Promise<boolean> {
    const entry = await this.fetchCacheEntry(store, key, parentTop);
    if (entry) await writeCacheEntry(store, key, entry);
    return entry !== undefined;
  }

  /**
   * The remote entry of `key` when it serves a state whose top layer is `parentTop`, its layer
   * fetched into the store (content-verified), the entry itself written nowhere: a build's own
   * `--cache-from` repository serves that build only (docs/security.md).
   */
  async fetchCacheEntry(store: Store, key: Digest, parentTop: Digest | undefined): Promise<CacheEntry | undefined> {
    const art = await (this.ahead.get(key) ?? this.getArtifact(cacheTag(key), CACHE_CONFIG_TYPE));
    if (!art) return undefined;
    const entry = parseJson<CacheEntry>(art.config, `cache entry ${key}`);
    if (!entry || entry.key !== key || !entry.history || typeof entry.history !== 'object') throw this.corrupt(`cache entry ${key}: not an entry for that key`);
    if (!entry.layer) return { key, history: entry.history };
    const { diffId, chainId } = entry.layer;
    if (typeof diffId !== 'string' || !isDigest(diffId) || typeof chainId !== 'string' || !isDigest(chainId)) throw this.corrupt(`cache entry ${key}: its layer is not digests`);
    // Made on another parent: it cannot serve this build (and its chainID is checked, not trusted).
    if (computeChainId(parentTop, diffId) !== chainId) return undefined;
    // The layer comes from the entry's own manifest: it must hold exactly that one blob.
    if (art.manifest.layers.length !== 1) throw this.corrupt(`cache entry ${key}: its manifest lists ${art.manifest.layers.length} blobs, not 1`);
    if (!(await store.hasLayer(chainId))) {
      const client = await this.client('pull', 'remote store: fetch');
      await fetchLayer(store, async () => client, art.manifest.layers[0]!, diffId, parentTop, `remote store: fetch cache entry ${key}`, { signal: this.opts.signal });
    }
    return { key, layer: await localLayerRef(store, chainId), history: entry.history };
  }

  // ---- created times of step images (engine/store/intermediate.ts) ----

  /** The `created` records of step images, shared through `made-<hex>` (config: `{created}`). */
  madeRecords(store: Store): MadeRecords {
    return {
      madeBefore: async (sameStep) => {
        const art = await this.getArtifact(madeTag(sameStep), MADE_CONFIG_TYPE);
        const created = art ? parseJson<{ created?: unknown }>(art.config, madeTag(sameStep))?.created : undefined;
        return typeof created === 'string' && created.length <= 64 && !Number.isNaN(Date.parse(created)) ? created : undefined;
      },
      recordMade: (sameStep, created) => this.pushArtifact(store, madeTag(sameStep), MADE_CONFIG_TYPE, Buffer.from(JSON.stringify({ created }))),
    };
  }

  // ---- the wire ----

  /** Pushes a manifest under `tag` whose config is `config` and whose layers are `layer`'s compressed blob, if any. */
  private async pushArtifact(store: Store, tag: string, configType: string, config: Buffer, layer?: LayerRef): Promise<void> {
    const cfg = await store.putBlob(config, undefined, { sync: false });
    const manifest: ImageManifest = { schemaVersion: 2, mediaType: MEDIA_TYPE_MANIFEST, config: { mediaType: configType, digest: cfg.digest, size: cfg.size }, layers: [] };
    // pushImage puts this manifest as stored when no layer goes (push.ts manifestFor), else lists the pushed blob.
    const stored = await store.putBlob(JSON.stringify(manifest), undefined, { sync: false });
    const image = { manifestDigest: stored.digest, manifest, configDigest: cfg.digest, config: {}, layers: layer ? [layer] : [] } as unknown as StoredImage;
    await pushImage(store, image, `${this.name}:${tag}`, { dockerConfig: this.opts.dockerConfig, env: this.opts.env, signal: this.opts.signal });
  }

  /** The manifest under `tag` and its config's bytes (both bounded, the config verified); undefined when the tag is absent. */
  private async getArtifact(tag: string, configType: string): Promise<Artifact | undefined> {
    const client = await this.client('pull', `remote store: fetch ${tag}`);
    let bytes: Buffer;
    try {
      bytes = (await client.getManifest(tag, [MEDIA_TYPE_MANIFEST], MAX_MANIFEST_BYTES)).bytes;
    } catch (err) {
      if (err instanceof RegistryError && err.status === 404) return undefined;
      throw err;
    }
    const manifest = parseJson<ImageManifest>(bytes, tag);
    const c = manifest?.config;
    if (!c || c.mediaType !== configType || typeof c.digest !== 'string' || !isDigest(c.digest) || !Array.isArray(manifest.layers))
      throw this.corrupt(`${tag} is not a ${configType} manifest`);
    for (const l of manifest.layers) {
      if (!l || typeof l.digest !== 'string' || !isDigest(l.digest) || typeof l.mediaType !== 'string' || !Number.isSafeInteger(l.size) || l.size < 0)
        throw this.corrupt(`${tag} lists a layer that is not a descriptor`);
    }
    const config = await client.getBlobBytes(c.digest, MAX_CONFIG_BYTES);
    if (sha256(config) !== c.digest) throw this.corrupt(`${tag}: its config ${c.digest} arrived as ${sha256(config)}`);
    return { manifest, config };
  }

  private async client(actions: 'pull' | 'pull,push', what: string): Promise<RegistryClient> {
    const credentials = await findCredentials(this.ref.registry, this.opts.dockerConfig);
    return new RegistryClient(this.ref, `${what} (${this.name})`, { credentials, signal: this.opts.signal, actions });
  }

  private async missing<T>(digest: Digest, get: () => Promise<T>, what: string): Promise<T> {
    try {
      return await get();
    } catch (err) {
      if (err instanceof RegistryError && err.status === 404)
        throw new NotFoundError('BLOB_NOT_FOUND', `remote store: ${what} is neither in this store nor in ${this.name}`, false);
      throw err;
    }
  }

  private corrupt(detail: string): RegistryError {
    return new RegistryError(`remote store ${this.name}: ${detail}`, { permanent: true });
  }
}

/**
 * A layer a step made, as the step's commit describes it (engine/layer/commit.ts), from the
 * store's record: nothing of it is taken from the remote.
 */
async function localLayerRef(store: Store, chain: Digest): Promise<LayerRef> {
  const meta = await store.readLayerMeta(chain);
  return { diffId: meta.diffId, chainId: chain, size: meta.size, digest: meta.diffId, mediaType: MEDIA_TYPE_LAYER, blobSize: meta.size };
}

function parseJson<T>(bytes: Buffer, what: string): T | undefined {
  try {
    const v = JSON.parse(bytes.toString('utf8')) as unknown;
    return v && typeof v === 'object' ? (v as T) : undefined;
  } catch {
    throw new RegistryError(`remote store: ${what} is not JSON`, { permanent: true });
  }
}

/** Fails a stream that brings more than `max` bytes. */
class ByteLimit extends Transform {
  private seen = 0;
  constructor(
    private readonly max: number,
    private readonly what: string,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.max) return cb(new RegistryError(`${this.what}: more than ${this.max} bytes`, { permanent: true }));
    cb(null, chunk);
  }
}

/**
 * `store`, except that a blob or layer it lacks is fetched from `remote` when asked about
 * (hasBlob, hasLayer): what activities' input checks (activities/validate.ts) see, so an
 * input naming something only the remote holds is fetched, verified, then accepted. Absent
 * from both: false.
 */
export function fetchingStore(store: Store, remote: RemoteStore): Store {
  const orAbsent = async (fetch: () => Promise<void>): Promise<boolean> => {
    try {
      await fetch();
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  };
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'hasBlob') return async (d: Digest) => (await target.hasBlob(d)) || orAbsent(() => remote.getBlobs(target, [d]));
      if (prop === 'hasLayer') return async (d: Digest) => (await target.hasLayer(d)) || orAbsent(() => remote.getLayers(target, [d]));
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
