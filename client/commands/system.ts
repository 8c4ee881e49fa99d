// `strata system df [-v]`: disk usage in docker's rows. strata has no containers or volumes
// (0 rows); its build cache is what the store keeps for builds (engine/cache/inventory.ts:
// instruction cache entries and their layers, layers nothing holds, unpacked contexts, loose
// blobs, logs, step images' time records) and the RUN cache mounts (cache/mounts/), shown with BuildKit's types regular,
// source.local and exec.cachemount. RECLAIMABLE is what `strata builder prune -a` frees.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { takeInventory } from '../../engine/cache/inventory.js';
import { buildCacheUsage } from '../../engine/cache/usage.js';
import { digestHex, type Digest } from '../../engine/digest.js';
import { listImages } from '../../engine/store/images.js';
import type { Store } from '../../engine/store/store.js';
import { directoryUsage, layerUsage } from '../../engine/store/usage.js';
import { formatRows, type Row } from '../template.js';
import { imageRow, imageSize } from './images.js';
import { humanSize, since } from '../units.js';

interface CacheRecord {
  id: string;
  type: 'regular' | 'exec.cachemount' | 'source.local';
  size: number;
  created: number;
  lastUsed: number;
}

/** Cache mounts, unpacked contexts, and instruction cache entries (sized by their layer). */
async function cacheRecords(store: Store, inv: Awaited<ReturnType<typeof takeInventory>>): Promise<CacheRecord[]> {
  const out: CacheRecord[] = [];
  for (const e of inv.entries) {
    const size = e.layer ? (inv.layers.get(e.layer.chainId)?.size ?? 0) : 0;
    out.push({ id: digestHex(e.key), type: 'regular', size, created: e.usedAt, lastUsed: e.usedAt });
  }
  const scan = async (dir: string, type: CacheRecord['type']) => {
    for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
      const p = path.join(dir, name);
      const st = await fs.lstat(p).catch(() => undefined);
      if (!st?.isDirectory()) continue;
      out.push({ id: name, type, size: await directoryUsage(p).catch(() => 0), created: st.birthtimeMs || st.ctimeMs, lastUsed: st.mtimeMs });
    }
  };
  await scan(path.join(store.root, 'cache', 'mounts'), 'exec.cachemount');
  for (const [d, c] of inv.contexts) out.push({ id: digestHex(d), type: 'source.local', size: c.bytes, created: c.usedAt, lastUsed: c.usedAt });
  return out.sort((a, b) => a.lastUsed - b.lastUsed || a.id.localeCompare(b.id));
}

export async function runSystemDf(store: Store, opts: { verbose?: boolean; format?: string }): Promise<void> {
  // docker counts top-level images: intermediate ones are left out, as `images` leaves them.
  const images = (await listImages(store)).filter((i) => !i.intermediate);
  const layers = new Map<Digest, number>();
  const users = new Map<Digest, number>();
  for (const i of images) {
    for (const c of i.chain) {
      users.set(c, (users.get(c) ?? 0) + 1);
      if (!layers.has(c)) layers.set(c, await layerUsage(store, c).catch(() => 0));
    }
  }
  const imagesSize = [...layers.values()].reduce((a, b) => a + b, 0);
  const inv = await takeInventory(store);
  const usage = buildCacheUsage(inv);
  const cache = await cacheRecords(store, inv);
  // RUN cache mounts are in the usage (their files' sizes), reclaimable as the rest.
  const cacheSize = usage.bytes;
  const withShare = (total: number, reclaimable: number) => (total > 0 ? `${humanSize(reclaimable)} (${Math.trunc((reclaimable * 100) / total)}%)` : humanSize(reclaimable));

  if (!opts.verbose) {
    const rows: Row[] = [
      { Type: 'Images', TotalCount: String(images.length), Active: '0', Size: humanSize(imagesSize), Reclaimable: withShare(imagesSize, imagesSize) },
      { Type: 'Containers', TotalCount: '0', Active: '0', Size: '0B', Reclaimable: '0B' },
      { Type: 'Local Volumes', TotalCount: '0', Active: '0', Size: '0B', Reclaimable: '0B' },
      {
        Type: 'Build Cache',
        TotalCount: String(usage.total),
        Active: String(usage.active),
        Size: humanSize(cacheSize),
        Reclaimable: humanSize(usage.reclaimable),
      },
    ];
    const headers = { Type: 'TYPE', TotalCount: 'TOTAL', Active: 'ACTIVE', Size: 'SIZE', Reclaimable: 'RECLAIMABLE' };
    process.stdout.write(formatRows(opts.format ?? 'table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}', rows, { defaultRow: '', headers }));
    return;
  }

  const imageRows: Row[] = [];
  for (const i of images) {
    const size = await imageSize(store, i.chain);
    let shared = 0;
    for (const c of i.chain) if ((users.get(c) ?? 0) > 1) shared += layers.get(c) ?? 0;
    // -v shows each image once, under its first tag.
    const [first] = i.tags;
    const names = first
      ? { repository: first.slice(0, first.lastIndexOf(':')), tag: first.slice(first.lastIndexOf(':') + 1), digest: '' }
      : { repository: '<none>', tag: '<none>', digest: '' };
    imageRows.push({ ...imageRow(i, names, size, true), SharedSize: humanSize(shared), UniqueSize: humanSize(size - shared), Containers: '0' });
  }
  const out: string[] = [];
  out.push('Images space usage:\n\n');
  out.push(
    formatRows('table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}', imageRows, {
      defaultRow: '',
      headers: {
        Repository: 'REPOSITORY',
        Tag: 'TAG',
        ID: 'IMAGE ID',
        CreatedSince: 'CREATED',
        Size: 'SIZE',
        SharedSize: 'SHARED SIZE',
        UniqueSize: 'UNIQUE SIZE',
        Containers: 'CONTAINERS',
      },
    }),
  );
  out.push('\nContainers space usage:\n\n');
  out.push(
    `${formatRows('table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}', [], { defaultRow: '', headers: { ID: 'CONTAINER ID', Image: 'IMAGE', Command: 'COMMAND', LocalVolumes: 'LOCAL VOLUMES', Size: 'SIZE', RunningFor: 'CREATED', Status: 'STATUS', Names: 'NAMES' } })}`,
  );
  out.push('\nLocal Volumes space usage:\n\n');
  out.push(formatRows('table {{.Name}}\t{{.Links}}\t{{.Size}}', [], { defaultRow: '', headers: { Name: 'VOLUME NAME', Links: 'LINKS', Size: 'SIZE' } }));
  out.push(`\nBuild cache usage: ${humanSize(cacheSize)}\n\n`);
  const cacheRows: Row[] = cache.map((c) => ({
    ID: c.id.slice(0, 12),
    CacheType: c.type,
    Size: humanSize(c.size, 3),
    CreatedSince: since(c.created),
    LastUsedSince: since(c.lastUsed),
    UsageCount: '0',
    Shared: 'false',
  }));
  out.push(
    formatRows('table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}', cacheRows, {
      defaultRow: '',
      headers: { ID: 'CACHE ID', CacheType: 'CACHE TYPE', Size: 'SIZE', CreatedSince: 'CREATED', LastUsedSince: 'LAST USED', UsageCount: 'USAGE', Shared: 'SHARED' },
    }),
  );
  process.stdout.write(out.join(''));
}
