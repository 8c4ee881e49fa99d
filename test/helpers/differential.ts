// Differential checks against docker's classic builder: the same Dockerfile built by strata
// (saved, loaded into docker) and by dockerd with DOCKER_BUILDKIT=0, compared as a user
// would — the files a container sees, and the image config.
import { createHash } from 'node:crypto';
import { execa } from 'execa';
import tarStream from 'tar-stream';
import { strataOk } from './cli.js';
import { docker, dockerHistory, dockerLoad, uniqueName } from './docker.js';

/**
 * One line per path of the container filesystem docker gives the image: path, type, mode,
 * owner, link target and content digest. Read from `docker export` of a created (never
 * started) container, so images without a shell can be listed too. Times are left out: the
 * two builders ran at different moments.
 */
export async function filesystemListing(image: string): Promise<string[]> {
  const id = (await docker(['create', image, '/no-such-command'])).trim();
  try {
    const exported = execa('docker', ['export', id], { buffer: false, encoding: 'buffer' });
    const [rows] = await Promise.all([tarListing(exported.stdout!), exported]);
    return rows;
  } finally {
    await execa('docker', ['rm', '-f', id], { reject: false });
  }
}

/** filesystemListing's rows for any tar stream (a `strata export`, say), sorted. */
export async function tarListing(tar: NodeJS.ReadableStream): Promise<string[]> {
  const extract = tarStream.extract();
  const rows: string[] = [];
  const done = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      const hash = createHash('sha256');
      for await (const chunk of entry) hash.update(chunk as Buffer);
      const name = `/${h.name.replace(/^\.?\//, '').replace(/\/$/, '')}`;
      const mode = ((h.mode ?? 0) & 0o7777).toString(8).padStart(4, '0');
      let row = `${name} ${h.type} ${mode} ${h.uid}:${h.gid}`;
      if (h.type === 'symlink' || h.type === 'link') row += ` -> ${h.linkname}`;
      if (h.type === 'file') row += ` sha256:${hash.digest('hex')}`;
      if (h.type === 'character-device' || h.type === 'block-device') row += ` ${h.devmajor},${h.devminor}`;
      rows.push(row);
    }
  })();
  tar.pipe(extract);
  await done;
  return rows.sort();
}

/**
 * Images the classic builder made besides the tagged results: other stages' results and the
 * steps of failed builds. docker keeps them untagged; removeClassicLeftovers() drops them.
 */
const classicLeftovers = new Set<string>();

/**
 * dockerd 20.10's own COPY sometimes fails on this machine's kernel while it unpacks into the
 * build container (its pivot_root/chroot helper: `Error processing tar file(exit status 1):
 * Error after fallback to chroot: no such file or directory`), with no strata process
 * involved (seen in bench runs of docker alone too). The oracle's failure is not the case's:
 * such a build is run again, twice at most.
 */
const DOCKERD_UNPACK_FLAKE = /Error processing tar file\(exit status 1\): Error after fallback to chroot/;

/** `DOCKER_BUILDKIT=0 docker build`, its failed containers removed and its images recorded. */
export async function classicBuildRaw(context: string, args: string[], env: Record<string, string> = {}): Promise<{ exitCode: number; output: string }> {
  for (let attempt = 1; ; attempt++) {
    const r = await execa('docker', ['build', '--force-rm', ...args, context], { env: { ...env, DOCKER_BUILDKIT: '0' }, reject: false, all: true });
    const output = String(r.all ?? '');
    for (const m of output.matchAll(/^ ---> ([0-9a-f]{12})$/gm)) classicLeftovers.add(m[1]!);
    if (r.exitCode !== 0 && attempt < 3 && DOCKERD_UNPACK_FLAKE.test(output)) continue;
    return { exitCode: r.exitCode ?? -1, output };
  }
}

/** docker's classic builder on a context dir; returns the tag of the image it built. */
export async function classicBuild(context: string, args: string[] = [], env: Record<string, string> = {}): Promise<string> {
  const tag = uniqueName('strata-classic');
  const r = await classicBuildRaw(context, ['-t', tag, ...args], env);
  if (r.exitCode !== 0) throw new Error(`classic docker build failed (${r.exitCode}):\n${r.output}`);
  return tag;
}

/** Removes the untagged images classic builds of this test file left (tagged ones stay). */
export async function removeClassicLeftovers(): Promise<void> {
  // Only the untagged ones: `docker rmi ID` of an image with one tag (the base) would untag it.
  const dangling = new Set((await docker(['images', '-q', '--filter', 'dangling=true'])).split('\n').filter(Boolean));
  const ids = [...classicLeftovers].filter((id) => dangling.has(id));
  classicLeftovers.clear();
  if (ids.length) await execa('docker', ['rmi', ...ids], { reject: false });
}

/** strata build → save → docker load; returns the tag docker knows it by. */
export async function strataBuildIntoDocker(context: string, args: string[] = [], env: Record<string, string> = {}): Promise<string> {
  const tag = uniqueName('strata-built');
  const out = `${context}.strata-out.tar`;
  try {
    await strataOk(['build', '-t', tag, ...args, '--output', `type=docker,dest=${out}`, context], { env });
    await dockerLoad(out);
  } finally {
    await execa('rm', ['-f', out]);
  }
  return tag;
}

/**
 * The base image of differential Dockerfiles: the test busybox rootfs, imported by the
 * global set-up under this name into both strata's store and docker.
 */
export const DIFF_BASE = 'strata-test-busybox:latest';

/** The image config fields a user relies on, as `docker image inspect` shows them. */
export const COMPARED_CONFIG_FIELDS = [
  'Env',
  'Cmd',
  'Entrypoint',
  'WorkingDir',
  'User',
  'ExposedPorts',
  'Volumes',
  'Labels',
  'StopSignal',
  'Healthcheck',
  'Shell',
  'OnBuild',
] as const;

export async function comparedConfig(image: string): Promise<Record<string, unknown>> {
  const config = (JSON.parse(await docker(['image', 'inspect', '--format', '{{json .Config}}', image])) ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  // docker shows an unset field as null, [] or {} depending on how the image was made.
  const empty = (v: unknown) => v === undefined || v === null || v === '' || (typeof v === 'object' && Object.keys(v as object).length === 0);
  for (const f of COMPARED_CONFIG_FIELDS) out[f] = empty(config[f]) ? null : config[f];
  // MAINTAINER's author sits beside the config, not in it.
  out.Author = (await docker(['image', 'inspect', '--format', '{{.Author}}', image])).trim() || null;
  return out;
}

/** `docker history` rows, oldest first: what created each, and whether it added a layer. */
export async function historyRows(image: string): Promise<{ createdBy: string; layer: boolean }[]> {
  return (await dockerHistory(image)).map((r) => ({ createdBy: r.createdBy, layer: r.size !== '0B' })).reverse();
}

/**
 * A classic-builder history text in the form strata (like BuildKit) writes: the instruction
 * as written after expansion, RUN with its argv. A deliberate difference, listed in
 * docs/compatibility.md; everything else in the row must match.
 */
export function normalizeClassicHistory(createdBy: string): string {
  if (createdBy === '') return ''; // an imported base
  // Config steps are "<SHELL> #(nop) <INSTRUCTION>", with the SHELL in force at the time.
  const nop = /^.*? #\(nop\)\s+(.*)$/s.exec(createdBy);
  if (nop) {
    const text = nop[1]!.trimEnd();
    // The classic builder lists EXPOSE's words as written, sorted; BuildKit the ports with protocols.
    const arg = /^ARG (.*)$/s.exec(text);
    if (arg) return argKeys(arg[1]!);
    const expose = /^EXPOSE (.*)$/s.exec(text);
    if (expose) return `EXPOSE [${expose[1]!.split(' ').flatMap(exposedPorts).sort().join(' ')}]`;
    // COPY/ADD: the classic builder names the content by hash ("file:…", "dir:…", "multi:…").
    // (and writes `--chown=X` straight before that name, without a blank).
    const copy = /^(COPY|ADD) (?:--chown=(\S*?))?(?:file|dir|multi):[0-9a-f]+ in (.*)$/s.exec(text);
    if (copy) return `${copy[1]}${copy[2] ? ` --chown=${copy[2]}` : ''} … ${copy[3]!.trim()}`;
    return text;
  }
  return `RUN ${createdBy}`;
}

/** strata's own history text, with COPY/ADD sources folded as normalizeClassicHistory does. */
export function normalizeStrataHistory(createdBy: string): string {
  const expose = /^EXPOSE \[(.*)\]$/s.exec(createdBy);
  if (expose) return `EXPOSE [${expose[1]!.split(' ').sort().join(' ')}]`;
  const arg = /^ARG (.*)$/s.exec(createdBy);
  if (arg) return argKeys(arg[1]!);
  // dockerd 20.10's HealthConfig predates StartInterval: one duration fewer in its row.
  const health = /^(HEALTHCHECK &\{\[.*\](?: "[^"]*"){3}) "[^"]*"( '.*'\})$/s.exec(createdBy);
  if (health) return `${health[1]}${health[2]}`;
  const copy = /^(COPY|ADD)((?: --\S+)*) (.*) (\S+)$/s.exec(createdBy);
  if (copy) return `${copy[1]}${copy[2]} … ${copy[4]}`;
  return createdBy;
}

/** An ARG row reduced to its names: the classic builder shows defaults, BuildKit values. */
function argKeys(args: string): string {
  // Values may hold blanks (`ARG V=from flag`): with any `NAME=` in the row, only those are names.
  const assigned = [...args.matchAll(/(?:^| )([A-Za-z_][A-Za-z0-9_]*)=/g)].map((m) => m[1]);
  return `ARG ${(assigned.length ? assigned : args.split(' ')).join(' ')}`;
}

/** A classic EXPOSE word as BuildKit lists it: `8000-8001/UDP` → `8000/udp 8001/udp`. */
function exposedPorts(word: string): string[] {
  const [ports = '', proto = 'tcp'] = word.split('/');
  const [start = '', end = start] = ports.split('-');
  const out: string[] = [];
  for (let p = Number(start); p <= Number(end); p++) out.push(`${p}/${proto.toLowerCase()}`);
  return out;
}
