// What ADD does beyond COPY: local tar archives are extracted, URLs downloaded, git
// repositories cloned. docker's rules (https://docs.docker.com/reference/dockerfile/#add).
// Downloads and clones land in a staging directory before anything touches the rootfs, so
// a failed fetch leaves no half-written file in a layer.
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import dns, { type LookupAddress } from 'node:dns';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP, isIPv6, type LookupFunction } from 'node:net';
import type { Readable } from 'node:stream';
import { execa } from 'execa';
import { decompressed } from '../archive/compression.js';
import { EngineError, UserInputError } from '../errors.js';
import { extractTar } from '../fsutil/extract.js';
import { resolveInRoot } from '../fsutil/scoped.js';
import type { AddSource } from '../plan/addSource.js';
import { fetchRefusal, NETWORK_HOST } from '../runtime/network.js';

/** A downloaded file, ready to be placed with docker's mode 0600. */
export interface DownloadedFile {
  file: string;
  /** From the Last-Modified header, when the server sent one (seconds). */
  mtime?: number;
}

const TAR_BLOCK = 512;

/** docker follows at most 10 redirects (Go's http client). */
const MAX_REDIRECTS = 10;
/** A server silent this long fails the download (retried: it may be a passing fault). */
const IDLE_TIMEOUT_MS = 120_000;

/**
 * Downloads `url` to `file` (which must not exist). 4xx answers are user errors (retrying
 * cannot fix them); 5xx and network failures are retryable. With `checksum` (`algo:hex`)
 * the bytes must match. On failure `file` is removed. Unless `allowHost` (the build holds
 * network.host), no request goes to this host itself (loopback, link-local, its own
 * addresses): the name is resolved here, every address checked, and the connection made to
 * the checked address, so a second DNS answer cannot redirect it; each redirect is checked
 * the same way.
 */
export async function downloadUrl(url: string, file: string, checksum: string | undefined, opts: { allowHost: boolean }): Promise<DownloadedFile> {
  const response = await getFollowingRedirects(url, opts.allowHost);
  const status = response.statusCode ?? 0;
  if (status < 200 || status >= 300) {
    response.resume();
    const message = `ADD failed: download ${url}: HTTP ${status} ${response.statusMessage ?? ''}`.trimEnd();
    if (status >= 400 && status < 500) throw new UserInputError('ADD_DOWNLOAD_FAILED', message);
    throw new EngineError('ADD_DOWNLOAD_FAILED', message);
  }
  const algorithm = checksum?.slice(0, checksum.indexOf(':')) ?? 'sha256';
  const hash = createHash(algorithm);
  try {
    const out = await fs.open(file, 'wx', 0o600);
    try {
      for await (const chunk of response) {
        hash.update(chunk as Buffer);
        await out.write(chunk as Buffer);
      }
    } finally {
      await out.close();
    }
  } catch (err) {
    response.destroy();
    await fs.rm(file, { force: true });
    throw new EngineError('ADD_DOWNLOAD_FAILED', `ADD failed: download ${url}: ${(err as Error).message}`, { cause: err });
  }
  const got = `${algorithm}:${hash.digest('hex')}`;
  if (checksum !== undefined && got !== checksum) {
    await fs.rm(file, { force: true });
    throw new UserInputError('ADD_CHECKSUM_MISMATCH', `ADD failed: checksum of ${url} does not match: expected ${checksum}, got ${got}`);
  }
  const lastModified = response.headers['last-modified'];
  const ms = lastModified ? Date.parse(lastModified) : NaN;
  return { file, mtime: Number.isNaN(ms) ? undefined : ms / 1000 };
}

async function getFollowingRedirects(url: string, allowHost: boolean): Promise<IncomingMessage> {
  let current = new URL(url);
  for (let hops = 0; ; hops++) {
    if (current.protocol !== 'http:' && current.protocol !== 'https:') {
      throw new UserInputError('ADD_DOWNLOAD_FAILED', `ADD failed: download ${url}: redirected to ${current.protocol} URL ${current.href}`);
    }
    const response = await getOnce(url, current, allowHost);
    const status = response.statusCode ?? 0;
    const location = response.headers.location;
    if (![301, 302, 303, 307, 308].includes(status) || !location) return response;
    response.resume();
    if (hops >= MAX_REDIRECTS) throw new UserInputError('ADD_DOWNLOAD_FAILED', `ADD failed: download ${url}: more than ${MAX_REDIRECTS} redirects`);
    current = new URL(location, current);
  }
}

function getOnce(original: string, url: URL, allowHost: boolean): Promise<IncomingMessage> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const what = `download ${original}`;
  if (isIP(host)) {
    const reason = fetchRefusal(host, allowHost);
    if (reason) return Promise.reject(addressDenied(what, host, host, reason));
  }
  // Node calls this for names only (an IP literal was checked above); what it returns is what it connects to.
  const lookup: LookupFunction = (hostname, options, callback) => {
    dns.lookup(hostname, { all: true, family: options.family, hints: options.hints }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      for (const a of addresses) {
        const reason = fetchRefusal(a.address, allowHost);
        if (reason) return callback(addressDenied(what, host, a.address, reason), '', 0);
      }
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
  const get = url.protocol === 'https:' ? https.get : http.get;
  return new Promise<IncomingMessage>((resolve, reject) => {
    const req = get(url, { lookup, headers: { 'user-agent': 'strata' } }, resolve);
    req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(new Error(`no answer for ${IDLE_TIMEOUT_MS / 1000}s`)));
    req.on('error', (err) => {
      if (err instanceof EngineError) return reject(err);
      reject(new EngineError('ADD_DOWNLOAD_FAILED', `ADD failed: download ${original}: ${err.message}`, { cause: err }));
    });
  });
}

/** ADD may not fetch from `address` (what `host` resolved to): a user error naming both. */
function addressDenied(what: string, host: string, address: string, reason: string): UserInputError {
  return new UserInputError(
    'ADD_ADDRESS_DENIED',
    `ADD failed: ${what}: ${host}${host === address ? '' : ` (${address})`} ${reason}; that needs the ${NETWORK_HOST} entitlement: strata build --allow ${NETWORK_HOST}`,
  );
}

/**
 * Clones `source` into `dir` (which must not exist) at its ref, shallowly when the remote
 * allows it, and returns the directory whose contents ADD copies (the subdir, if any).
 * `.git` is removed unless `keepGitDir`. The remote is reached only where a download may go
 * (gitRoute).
 */
export async function cloneGit(source: AddSource & { kind: 'git' }, dir: string, keepGitDir: boolean, opts: { allowHost: boolean }): Promise<string> {
  const route = await gitRoute(source, opts.allowHost);
  const git = async (args: string[]) => {
    // No prompt for credentials: a worker has nobody to answer it.
    const r = await execa('git', [...route.config, ...args], { cwd: dir, reject: false, env: { GIT_TERMINAL_PROMPT: '0', ...route.env }, stdin: 'ignore' });
    if (r.exitCode !== 0) throw gitError(source, args, r.stderr);
    return r.stdout;
  };
  // The planner refused these; a plan from elsewhere must not turn a ref into a git option.
  if (source.ref?.startsWith('-')) throw new UserInputError('ADD_GIT_FAILED', `ADD failed: invalid git ref ${source.ref}`);
  if (source.remote.startsWith('-')) throw new UserInputError('ADD_GIT_FAILED', `ADD failed: invalid git remote ${source.remote}`);
  await fs.mkdir(dir);
  await git(['init', '-q']);
  await git(['remote', 'add', 'origin', route.remote]);
  const ref = source.ref ?? 'HEAD';
  let checkout = 'FETCH_HEAD';
  try {
    await git(['fetch', '-q', '--depth=1', '--no-tags', 'origin', ref]);
  } catch (shallowErr) {
    // A commit the server will not hand out by itself (no allowReachableSHA1InWant, or a
    // dumb http server): fetch every branch and tag and find it among them.
    if (!/^[0-9a-f]{7,64}$/i.test(ref)) throw shallowErr;
    await git(['fetch', '-q', '--tags', 'origin', '+refs/heads/*:refs/remotes/origin/*']);
    checkout = ref;
  }
  // A fixed umask: the files' modes must not depend on the worker's.
  await execa('sh', ['-c', 'umask 022 && exec git -c advice.detachedHead=false checkout -q --detach "$1"', 'sh', `${checkout}^{commit}`], {
    cwd: dir,
    reject: false,
    stdin: 'ignore',
  }).then((r) => {
    if (r.exitCode !== 0) throw gitError(source, ['checkout', checkout], r.stderr);
  });
  if (!keepGitDir) await fs.rm(path.join(dir, '.git'), { recursive: true, force: true });
  if (source.subdir === undefined) return dir;
  // The subdir is resolved inside the checkout: a symlink in the repository cannot lead out.
  const sub = await resolveInRoot(dir, source.subdir, { followFinal: true });
  const st = await fs.stat(sub).catch(() => undefined);
  if (!st?.isDirectory()) {
    throw new UserInputError('ADD_GIT_SUBDIR', `ADD failed: ${source.subdir} is not a directory in ${source.remote}#${source.ref ?? ''}`);
  }
  return sub;
}

/** How git reaches a remote: the remote it is given, `-c` settings and environment. */
export interface GitRoute {
  remote: string;
  config: string[];
  env: Record<string, string>;
}

const GIT_DEFAULT_PORTS: Record<string, string> = { 'http:': '80', 'https:': '443' };

/**
 * Checks where a clone would connect, as downloads are checked (fetchRefusal): the remote's
 * host is resolved here and every address checked, and git is pinned to the checked address
 * so that a second DNS answer cannot send it elsewhere: http(s) through curl's resolve list,
 * git:// and ssh by putting the address in the remote (ssh keeps the name for its known
 * hosts). Redirects are not followed: their target is not checked (git's default follows one
 * to any host). A file:// remote (STRATA_ALLOW_FILE_GIT) and a build holding network.host
 * are not checked.
 */
export async function gitRoute(source: AddSource & { kind: 'git' }, allowHost: boolean, lookup: (host: string) => Promise<string[]> = lookupAll): Promise<GitRoute> {
  const plain: GitRoute = { remote: source.remote, config: [], env: {} };
  if (source.local || allowHost) return plain;
  const scp = /^([A-Za-z0-9._-]+)@([A-Za-z0-9.-]+):(.*)$/s.exec(source.remote);
  let url: URL | undefined;
  let host: string;
  if (scp && !/^[a-z][a-z0-9+.-]*:\/\//i.test(source.remote)) {
    host = scp[2]!;
  } else {
    try {
      url = new URL(source.remote);
    } catch {
      throw new UserInputError('ADD_GIT_FAILED', `ADD failed: invalid git remote ${source.remote}`);
    }
    host = url.hostname.replace(/^\[|\]$/g, '');
  }
  if (!isIP(host) && !/^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host)) {
    throw new UserInputError('ADD_GIT_FAILED', `ADD failed: invalid host in git remote ${source.remote}`);
  }
  const what = `git fetch ${source.remote}`;
  let addresses: string[];
  try {
    addresses = isIP(host) ? [host] : await lookup(host);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const message = `ADD failed: ${what}: cannot resolve ${host} (${code ?? (err as Error).message})`;
    // An unknown name stays unknown; a resolver that did not answer may answer next time.
    if (code === 'ENOTFOUND') throw new UserInputError('ADD_GIT_FAILED', message);
    throw new EngineError('ADD_GIT_FAILED', message, { cause: err });
  }
  if (addresses.length === 0) throw new EngineError('ADD_GIT_FAILED', `ADD failed: ${what}: ${host} has no address`);
  for (const a of addresses) {
    const reason = fetchRefusal(a, allowHost);
    if (reason) throw addressDenied(what, host, a, reason);
  }
  const address = addresses[0]!;
  const literal = isIPv6(address) ? `[${address}]` : address;
  if (scp && !url) return { remote: `${scp[1]}@${literal}:${scp[3]}`, config: [], env: sshAlias(host) };
  if (url!.protocol === 'http:' || url!.protocol === 'https:') {
    const port = url!.port || GIT_DEFAULT_PORTS[url!.protocol]!;
    const resolve = isIP(host) ? [] : ['-c', `http.curloptResolve=${host}:${port}:${literal}`];
    return { remote: source.remote, config: [...resolve, '-c', 'http.followRedirects=false'], env: {} };
  }
  if (url!.protocol === 'git:' || url!.protocol === 'ssh:') {
    const pinned = new URL(source.remote);
    pinned.hostname = literal;
    return { remote: pinned.href, config: [], env: url!.protocol === 'ssh:' ? sshAlias(host) : {} };
  }
  throw new UserInputError('ADD_GIT_FAILED', `ADD failed: unsupported git remote ${source.remote}`);
}

/** ssh checks the host key under the name, not the address it is given; nobody can answer a prompt. */
function sshAlias(host: string): Record<string, string> {
  return { GIT_SSH_COMMAND: `ssh -o HostKeyAlias=${host} -o BatchMode=yes` };
}

async function lookupAll(host: string): Promise<string[]> {
  return (await dns.promises.lookup(host, { all: true })).map((a) => a.address);
}

function gitError(source: AddSource & { kind: 'git' }, args: string[], stderr: string): EngineError {
  const message = `ADD failed: git ${args[0]} ${source.remote}${source.ref ? `#${source.ref}` : ''}: ${stderr.trim()}`;
  // What a retry cannot fix; anything else (a network failure) is retried.
  if (/couldn't find remote ref|not found|does not appear to be a git repository|not a valid|unknown revision|did not match|reference is not a tree/i.test(stderr)) {
    return new UserInputError('ADD_GIT_FAILED', message);
  }
  return new EngineError('ADD_GIT_FAILED', message);
}

/**
 * Whether `file` is a tar archive, plain or compressed, as docker decides: by content, when
 * the first header of the (decompressed) stream is a valid tar header. A compressed file
 * that is not a tar, or one that fails to decompress, is not an archive.
 */
export async function isTarArchive(file: string): Promise<boolean> {
  const src = createReadStream(file);
  let stream: Readable | undefined;
  try {
    stream = (await decompressed(src)).stream;
    const head = await readUpTo(stream, TAR_BLOCK);
    return head.length === TAR_BLOCK && validTarHeader(head);
  } catch {
    return false;
  } finally {
    stream?.destroy();
    src.destroy();
  }
}

/** Extracts the archive `file` into `destDir` (a host directory inside the rootfs) safely. */
export async function extractArchive(file: string, destDir: string): Promise<void> {
  const { stream } = await decompressed(createReadStream(file));
  // The archive's owners and modes are kept, whatever --chown says: docker does the same.
  await extractTar(stream, destDir, { whiteouts: 'keep', sameOwner: true });
}

async function readUpTo(stream: Readable, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let have = 0;
  for await (const chunk of stream) {
    chunks.push(chunk as Buffer);
    have += (chunk as Buffer).length;
    if (have >= n) break;
  }
  return Buffer.concat(chunks).subarray(0, n);
}

/** The header's checksum field matches its bytes (unsigned or signed sum, as readers accept). */
function validTarHeader(block: Buffer): boolean {
  const field = block
    .subarray(148, 156)
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .trim();
  if (!/^[0-7]+$/.test(field)) return false;
  const want = parseInt(field, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < TAR_BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return want === unsigned || want === signed;
}
