// What the host shows of a build's runtime: runc containers, mounts, processes. Tests use it
// to prove a cancelled or crashed build left nothing behind.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';

export interface RuncContainer {
  id: string;
  bundle: string;
  status: string;
}

export async function runcContainers(): Promise<RuncContainer[]> {
  const r = await execa('runc', ['list', '--format', 'json']);
  return (JSON.parse(r.stdout || '[]') ?? []) as RuncContainer[];
}

/** The runc container whose process command line holds `marker`, with its bundle's rootfs. */
export async function findContainer(marker: string): Promise<{ id: string; bundle: string; rootfs: string } | undefined> {
  for (const c of await runcContainers()) {
    const config = JSON.parse(await fs.readFile(path.join(c.bundle, 'config.json'), 'utf8').catch(() => '{}')) as {
      process?: { args?: string[] };
      root?: { path?: string };
    };
    if (config.process?.args?.join(' ').includes(marker)) return { id: c.id, bundle: c.bundle, rootfs: config.root!.path! };
  }
  return undefined;
}

export async function mountPoints(): Promise<string[]> {
  return (await fs.readFile('/proc/mounts', 'utf8')).split('\n').map((l) => l.split(' ')[1] ?? '');
}

/** Every process's command line, read from /proc. */
export async function commandLines(): Promise<string[]> {
  const out: string[] = [];
  for (const pid of (await fs.readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
    const cmd = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmd) out.push(cmd.replaceAll('\0', ' '));
  }
  return out;
}

/** Polls `probe` every 100 ms until it gives a value. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
