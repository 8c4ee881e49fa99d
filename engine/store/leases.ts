// Leases, as containerd has them: a record under $STRATA_HOME/leases/ that keeps layers and
// blobs from the store's GC while a build needs them. Every activity of a build opens one (its
// own file: activities of one build run at once on several workers, and no file has two
// writers) naming what it reads and makes; while it runs the lease is open, renewed every
// minute, and also holds everything stored since it opened (a layer just committed, a context
// blob just written, before any record names them). When the activity ends the lease closes:
// it names what the build holds and lasts an hour more, long enough for the build's next
// activity to take its own. A build's commit releases them all. A dead worker's lease expires
// by itself (five minutes after its last renewal), so nothing is held forever.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { digestHex, isDigest, sha256, type Digest } from '../digest.js';
import { PROCESS_TAG, writeFileAtomic } from '../fsutil/atomic.js';

export interface LeaseRecord {
  /** The build (workflow ID) or command that holds it. */
  build: string;
  /** PROCESS_TAG of the process that wrote it. */
  owner: string;
  /** True while the activity runs: then everything stored since `since` is held too. */
  open: boolean;
  /** Milliseconds since the epoch. */
  since: number;
  expiresAt: number;
  /** Top chainIDs: each holds its whole chain. */
  layers: Digest[];
  /** Blobs (contexts, Dockerfiles); a context's unpacked directory goes with its blob. */
  blobs: Digest[];
}

/** How long an open lease lives past its last renewal: a dead worker's lease goes after this. */
export const OPEN_LEASE_MS = 5 * 60_000;
const RENEW_MS = 60_000;
/** How long a closed lease holds what its build used, for the build's next activity. */
export const CLOSED_LEASE_MS = 60 * 60_000;

export function leasesDir(root: string): string {
  return path.join(root, 'leases');
}

/** The file-name prefix of a build's leases: build IDs may hold any character. */
function buildPrefix(build: string): string {
  return digestHex(sha256(build)).slice(0, 16);
}

export interface Lease {
  /** Adds to what the lease holds (written at once). */
  add(what: { layers?: (Digest | undefined)[]; blobs?: (Digest | undefined)[] }): Promise<void>;
  /** Ends the activity's hold: what the lease names stays held for CLOSED_LEASE_MS. */
  close(): Promise<void>;
  /** Ends the hold at once: the lease is removed. */
  release(): Promise<void>;
}

/** Opens a lease for `build`, holding `what` and everything stored from now until it closes. */
export async function openLease(root: string, build: string, what: { layers?: (Digest | undefined)[]; blobs?: (Digest | undefined)[] } = {}): Promise<Lease> {
  const file = path.join(leasesDir(root), `${buildPrefix(build)}-${PROCESS_TAG}-${randomBytes(6).toString('hex')}.json`);
  const record: LeaseRecord = { build, owner: PROCESS_TAG, open: true, since: Date.now() - 1000, expiresAt: 0, layers: [], blobs: [] };
  const merge = (w: { layers?: (Digest | undefined)[]; blobs?: (Digest | undefined)[] }) => {
    for (const l of w.layers ?? []) if (l && !record.layers.includes(l)) record.layers.push(l);
    for (const b of w.blobs ?? []) if (b && !record.blobs.includes(b)) record.blobs.push(b);
  };
  let writing = Promise.resolve();
  // Writes are queued: a renewal never overtakes a later change.
  const write = (): Promise<void> => {
    const text = JSON.stringify(record);
    writing = writing.then(() => writeFileAtomic(file, text)).catch(() => undefined);
    return writing;
  };
  merge(what);
  record.expiresAt = Date.now() + OPEN_LEASE_MS;
  await fs.mkdir(leasesDir(root), { recursive: true });
  await writeFileAtomic(file, JSON.stringify(record));
  const renew = setInterval(() => {
    record.expiresAt = Date.now() + OPEN_LEASE_MS;
    void write();
  }, RENEW_MS);
  renew.unref();
  return {
    async add(w) {
      merge(w);
      await write();
    },
    async close() {
      clearInterval(renew);
      record.open = false;
      record.expiresAt = Date.now() + CLOSED_LEASE_MS;
      await write();
    },
    async release() {
      clearInterval(renew);
      await writing;
      await fs.rm(file, { force: true });
    },
  };
}

/** Removes every lease of `build` (its commit is done: its image holds its layers now). */
export async function releaseBuildLeases(root: string, build: string): Promise<void> {
  const prefix = `${buildPrefix(build)}-`;
  for (const name of await fs.readdir(leasesDir(root)).catch(() => [] as string[])) {
    if (name.startsWith(prefix)) await fs.rm(path.join(leasesDir(root), name), { force: true });
  }
}

/**
 * The leases in force (not expired). Expired lease files are removed as they are found: an
 * open lease is renewed every minute while its activity runs, so an expired one's worker died.
 */
export async function activeLeases(root: string, now = Date.now()): Promise<LeaseRecord[]> {
  const out: LeaseRecord[] = [];
  for (const name of await fs.readdir(leasesDir(root)).catch(() => [] as string[])) {
    if (!name.endsWith('.json')) continue;
    const file = path.join(leasesDir(root), name);
    const rec = parseLease(await fs.readFile(file, 'utf8').catch(() => ''));
    if (rec && rec.expiresAt > now) {
      out.push(rec);
      continue;
    }
    // A lease is written whole (atomically): an unreadable file is no lease, once it is old.
    const st = await fs.stat(file).catch(() => undefined);
    if (rec || (st && now - st.mtimeMs > OPEN_LEASE_MS)) await fs.rm(file, { force: true });
  }
  return out;
}

function parseLease(text: string): LeaseRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const r = v as Partial<LeaseRecord> | null;
  if (!r || typeof r !== 'object' || typeof r.build !== 'string' || typeof r.owner !== 'string') return undefined;
  if (typeof r.since !== 'number' || typeof r.expiresAt !== 'number' || typeof r.open !== 'boolean') return undefined;
  if (!Array.isArray(r.layers) || !Array.isArray(r.blobs)) return undefined;
  return {
    ...(r as LeaseRecord),
    layers: r.layers.filter((d): d is Digest => typeof d === 'string' && isDigest(d)),
    blobs: r.blobs.filter((d): d is Digest => typeof d === 'string' && isDigest(d)),
  };
}
