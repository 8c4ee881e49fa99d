// How the CLI shows things: sizes, durations, tables, a push's report, a build's result.
import { registryReference } from '../engine/registry/reference.js';
import type { PushResult } from '../engine/registry/push.js';
import type { BuildResult } from '../workflows/types.js';

/** Decimal units, as docker prints sizes: 1.5MB, 820kB. */
export function formatSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(2).replace(/\.?0+$/, '')}${units[i]}`;
}

/** 850ms, 42s, 3m05s, 2h07m. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const sec = Math.round(ms / 1000);
  if (sec < 60) return `${sec}s`;
  const min = Math.floor(sec / 60);
  if (min < 60) return `${min}m${String(sec % 60).padStart(2, '0')}s`;
  return `${Math.floor(min / 60)}h${String(min % 60).padStart(2, '0')}m`;
}

/** Prints rows (the first is the header) in columns three spaces apart, as docker's tables. */
export function printTable(rows: string[][], write: (line: string) => void = (l) => console.log(l)): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows)
    write(
      r
        .map((c, i) => c.padEnd(widths[i]! + 3))
        .join('')
        .trimEnd(),
    );
}

/** docker push's report: one line per layer, then the tag's digest and size. */
export function printPushResult(r: PushResult, out: (line: string) => void): void {
  const ref = registryReference(r.reference);
  out(`The push refers to repository [${ref.registry === 'docker.io' ? 'docker.io/' : `${ref.registry}/`}${ref.repository}]`);
  for (const b of r.blobs) {
    if (b.kind !== 'layer') continue;
    out(`${b.digest.slice(7, 19)}: ${b.uploaded ? 'Pushed' : b.mountedFrom ? `Mounted from ${b.mountedFrom}` : 'Layer already exists'}`);
  }
  out(`${ref.reference}: digest: ${r.digest} size: ${r.size}`);
}

/** What a finished build prints (plain and tty progress), as docker's classic builder does. */
export function printBuildResult(r: BuildResult, write: (line: string) => void): void {
  write(`Successfully built ${r.imageId.slice(7, 19)}`);
  for (const t of r.tags) write(`Successfully tagged ${t}`);
  for (const o of r.outputs) write(`Saved image to ${o}`);
  for (const p of r.pushed ?? []) printPushResult(p, write);
}
