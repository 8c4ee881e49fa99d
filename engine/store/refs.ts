// What refers to what in the store: the one reference rule every removal follows (the GC,
// builder prune, and image removal). A layer stays while an image (tagged or not: every
// index.json entry), a lease, an overlay mount, or an instruction cache entry holds it or a
// layer above it; a blob stays while an image or a lease names it or a schedule pins it
// (a snapshot's context and Dockerfile). While a lease is open (an activity or command is
// writing to the store), whatever was stored after it opened stays too: a layer committed a
// moment ago, a context blob just written, before any record names them. Cache entries are
// counted apart: they are what the GC trims (engine/cache/gc.ts), and removing an image
// (engine/store/gc.ts) takes its layers whatever entries name them, as docker's classic
// builder does: such an entry then misses. Intermediate images (a build's image after each
// step) are build cache too: they hold their blobs, not their layers; the GC drops the ones
// whose layer it removes.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { asDigest, chainId as computeChainId, isDigest, type Digest } from '../digest.js';
import { ANNOTATION_INTERMEDIATE, type ImageConfigFile, type ImageManifest } from '../image/types.js';
import { activeLeases } from './leases.js';
import { schedulePins } from './schedules.js';
import type { Store } from './store.js';

/** One stored layer, as the GC sees it. */
export interface StoredLayer {
  chain: Digest;
  parent?: Digest;
  /** Bytes of its uncompressed tar (meta.json's size). */
  size: number;
  /** When it was committed (meta.json's mtime), for open leases. */
  storedAt: number;
  /** The blob it was unpacked from (import, load, pull). */
  blob?: Digest;
}

export interface ImageRefs {
  /** Manifest digests of every image (tagged or not). */
  manifests: Digest[];
  /** chainIDs images use, each with the manifests that use it (intermediate images left out). */
  layers: Map<Digest, Digest[]>;
  /** chainIDs intermediate images (only a build step's, untagged) use, each with their manifests. */
  intermediate: Map<Digest, Digest[]>;
  /** Manifests, configs and layer blobs images name. */
  blobs: Set<Digest>;
  /** Those of each manifest (itself, its config, its layers). */
  blobsOf: Map<Digest, Digest[]>;
  /** Manifests the index lists only as intermediate images. */
  intermediateOnly: Set<Digest>;
}

export interface LeaseRefs {
  /** chainIDs leases hold, whole chains. */
  layers: Set<Digest>;
  blobs: Set<Digest>;
  /** Builds that hold a lease: their logs are still being written or read. */
  builds: Set<string>;
  /** The earliest `since` of an open lease: anything stored after it stays. */
  openSince?: number;
}

/** Every layer in the store, by chainID. Unreadable ones (a torn commit) are left out. */
export async function storedLayers(store: Store): Promise<Map<Digest, StoredLayer>> {
  const out = new Map<Digest, StoredLayer>();
  for (const hex of await fs.readdir(path.join(store.root, 'layers')).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{64}$/.test(hex)) continue;
    const metaFile = path.join(store.root, 'layers', hex, 'meta.json');
    const [text, st] = await Promise.all([fs.readFile(metaFile, 'utf8').catch(() => undefined), fs.stat(metaFile).catch(() => undefined)]);
    if (text === undefined || !st) continue;
    try {
      const meta = JSON.parse(text) as { parent?: string; size?: number; blob?: { digest?: string } };
      const chain = asDigest(`sha256:${hex}`);
      out.set(chain, {
        chain,
        parent: meta.parent && isDigest(meta.parent) ? meta.parent : undefined,
        size: typeof meta.size === 'number' ? meta.size : 0,
        storedAt: st.mtimeMs,
        blob: meta.blob?.digest && isDigest(meta.blob.digest) ? meta.blob.digest : undefined,
      });
    } catch {
      // a torn meta.json: not a layer yet
    }
  }
  return out;
}

/** The chain from `top` down (top first), as far as the stored layers go. */
export function chainDown(layers: Map<Digest, StoredLayer>, top: Digest | undefined): Digest[] {
  const out: Digest[] = [];
  for (let cur = top; cur && !out.includes(cur); cur = layers.get(cur)?.parent) out.push(cur);
  return out;
}

/** What every image in index.json (tagged or not) holds. */
export async function imageRefs(store: Store): Promise<ImageRefs> {
  const index = await store.readIndex();
  const manifests = [...new Set(index.manifests.map((d) => d.digest))];
  const plain = new Set(index.manifests.filter((d) => !d.annotations?.[ANNOTATION_INTERMEDIATE]).map((d) => d.digest));
  const refs: ImageRefs = { manifests, layers: new Map(), intermediate: new Map(), blobs: new Set(), blobsOf: new Map(), intermediateOnly: new Set() };
  for (const m of manifests) {
    const uses = plain.has(m) ? refs.layers : refs.intermediate;
    if (!plain.has(m)) refs.intermediateOnly.add(m);
    refs.blobs.add(m);
    refs.blobsOf.set(m, [m]);
    const manifest = await store.readJsonBlob<ImageManifest>(m).catch(() => undefined);
    if (!manifest) continue;
    const config = asDigest(manifest.config.digest);
    const named = [m, config, ...manifest.layers.map((l) => asDigest(l.digest))];
    refs.blobsOf.set(m, named);
    for (const b of named) refs.blobs.add(b);
    const file = await store.readJsonBlob<ImageConfigFile>(config).catch(() => undefined);
    let parent: Digest | undefined;
    for (const diffId of file?.rootfs.diff_ids ?? []) {
      parent = computeChainId(parent, diffId);
      uses.set(parent, [...(uses.get(parent) ?? []), m]);
    }
  }
  return refs;
}

/** What the leases in force hold; read again just before anything is removed. */
export async function leaseRefs(store: Store, layers: Map<Digest, StoredLayer>): Promise<LeaseRefs> {
  const refs: LeaseRefs = { layers: new Set(), blobs: new Set(), builds: new Set() };
  for (const lease of await activeLeases(store.root)) {
    refs.builds.add(lease.build);
    for (const top of lease.layers) for (const c of chainDown(layers, top)) refs.layers.add(c);
    for (const b of lease.blobs) refs.blobs.add(b);
    if (lease.open) refs.openSince = Math.min(refs.openSince ?? Infinity, lease.since);
  }
  return refs;
}

/** Blobs that schedules pin: what a snapshot schedule builds at every run. */
export async function pinnedBlobs(store: Store): Promise<Set<Digest>> {
  return new Set((await schedulePins(store.root)).filter(isDigest));
}

/** Short link names (l/<id>) that overlay mounts use as lower layers now (any store's: a short ID names one layer anywhere). */
export async function mountedLayers(): Promise<Set<string>> {
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const out = new Set<string>();
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const [fstype, , options = ''] = line.slice(sep + 3).split(' ');
    if (fstype !== 'overlay') continue;
    for (const dir of (/(?:^|,)lowerdir=([^,]*)/.exec(options)?.[1] ?? '').split(':')) {
      const m = /(?:^|\/)l\/([0-9a-f]+)$/.exec(unescape(dir));
      if (m) out.add(m[1]!);
    }
  }
  return out;
}

/**
 * The layers nothing but cache entries may hold: every layer an image, a lease or a mount
 * holds, or that was stored while a lease is open, with the chains below them.
 */
export function heldLayers(store: Store, layers: Map<Digest, StoredLayer>, images: ImageRefs, leases: LeaseRefs, mounted: Set<string>): Set<Digest> {
  const held = new Set<Digest>();
  const hold = (top: Digest) => {
    for (const c of chainDown(layers, top)) held.add(c);
  };
  for (const c of images.layers.keys()) hold(c);
  for (const c of leases.layers) hold(c);
  for (const l of layers.values()) {
    if (mounted.has(path.basename(store.shortLink(l.chain)))) hold(l.chain);
    if (leases.openSince !== undefined && l.storedAt >= leases.openSince) hold(l.chain);
  }
  return held;
}
