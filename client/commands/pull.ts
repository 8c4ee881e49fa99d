// `strata pull REF`: an image from its registry into the store, in the CLI (no workflow: a
// pull only writes the store, and one run again skips what it already fetched). Prints
// docker's rows; on a terminal each layer has a progress bar, redrawn in place.
import { UserInputError } from '../../engine/errors.js';
import { formatPlatform, hostPlatform, type Platform } from '../../engine/image/platform.js';
import { parseReference } from '../../engine/image/reference.js';
import { pullImage, type PullProgress } from '../../engine/registry/pull.js';
import { registryReference } from '../../engine/registry/reference.js';
import type { Store } from '../../engine/store/store.js';
import { formatSize } from '../format.js';

export interface PullCommandOptions {
  platform?: string;
  quiet?: boolean;
}

/** `linux/arm64`, `linux/arm/v7`: the platform a pull picks from an index. */
export function parsePlatform(text: string | undefined): Platform {
  if (!text) return hostPlatform();
  const [os, architecture, variant, extra] = text.toLowerCase().split('/');
  if (!os || !architecture || extra !== undefined) throw new UserInputError('PLATFORM_INVALID', `--platform ${text}: expected OS/ARCH[/VARIANT]`);
  const aliases: Record<string, string> = { x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64', i386: '386' };
  return { os, architecture: aliases[architecture] ?? architecture, ...(variant ? { variant } : {}) };
}

export async function runPull(store: Store, reference: string, opts: PullCommandOptions, out: (line: string) => void = (l) => console.log(l)): Promise<void> {
  const ref = parseReference(reference);
  const remote = registryReference(reference);
  const platform = parsePlatform(opts.platform);
  const tty = !opts.quiet && process.stdout.isTTY === true;
  if (!opts.quiet) {
    const last = reference.slice(reference.lastIndexOf('/') + 1);
    if (!last.includes(':') && !last.includes('@')) out('Using default tag: latest');
    out(`${ref.digest ?? ref.tag}: Pulling from ${remote.repository}`);
  }
  const rows = tty ? new ProgressRows((s) => process.stdout.write(s)) : undefined;
  const said = new Set<string>();
  const onProgress = (p: PullProgress) => {
    if (opts.quiet) return;
    const id = p.digest.slice(7, 19);
    if (rows) return rows.update(id, p);
    // Plain rows: one when a layer starts and one when it ends.
    const text = p.status === 'exists' ? 'Already exists' : p.status === 'waiting' ? 'Pulling fs layer' : p.status === 'done' ? 'Pull complete' : undefined;
    if (text && !said.has(`${id} ${text}`)) {
      said.add(`${id} ${text}`);
      out(`${id}: ${text}`);
    }
  };
  const r = await pullImage(store, reference, { platform, onProgress });
  rows?.finish();
  const name = ref.digest ? `${ref.name}@${ref.digest}` : `${ref.name}:${ref.tag}`;
  if (opts.quiet) return out(name);
  out(`Digest: ${r.image.digest}`);
  if (formatPlatform(platform) !== formatPlatform(hostPlatform())) out(`Platform: ${formatPlatform(platform)}`);
  out(`Status: ${r.upToDate ? 'Image is up to date for' : 'Downloaded newer image for'} ${name}`);
  out(`${remote.registry}/${remote.repository}${ref.digest ? `@${ref.digest}` : `:${ref.tag}`}`);
}

/** One line per layer, rewritten in place with ANSI cursor moves (a terminal only). */
class ProgressRows {
  private readonly order: string[] = [];
  private readonly text = new Map<string, string>();
  private drawn = 0;
  private last = 0;
  constructor(private readonly write: (s: string) => void) {}

  update(id: string, p: PullProgress): void {
    if (!this.text.has(id)) this.order.push(id);
    this.text.set(id, `${id}: ${describe(p)}`);
    const now = Date.now();
    if (p.status === 'downloading' && now - this.last < 100) return;
    this.last = now;
    this.draw();
  }

  finish(): void {
    this.draw();
  }

  private draw(): void {
    let s = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    for (const id of this.order) s += `\x1b[2K${this.text.get(id)}\n`;
    this.drawn = this.order.length;
    this.write(s);
  }
}

function describe(p: PullProgress): string {
  switch (p.status) {
    case 'exists':
      return 'Already exists';
    case 'waiting':
      return 'Pulling fs layer';
    case 'downloading': {
      const width = 40;
      const filled = p.size > 0 ? Math.min(width, Math.round((p.bytes / p.size) * width)) : 0;
      const bar = '='.repeat(Math.max(0, filled - 1)) + (filled > 0 ? '>' : '') + ' '.repeat(width - filled);
      return `Downloading [${bar}]  ${formatSize(p.bytes)}/${formatSize(p.size)}`;
    }
    case 'extracting':
      return 'Extracting';
    case 'done':
      return 'Pull complete';
  }
}
