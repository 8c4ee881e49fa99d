// Extended attributes and device nodes over whole trees, batched: Node has no xattr or mknod
// API, so each operation runs ONE child process (getfattr, setfattr, sh) for all paths.
import { isUtf8 } from 'node:buffer';
import path from 'node:path';
import { execa } from 'execa';
import { EngineError } from '../errors.js';

/** Extended attributes of one path: attribute name → raw value. */
export type Xattrs = Map<string, Buffer>;

/** One extended attribute to set on `path` (an absolute host path; symlinks are not followed). */
export interface XattrSpec {
  path: string;
  name: string;
  value: Buffer;
}

/** A device node or fifo to create at `path` (absolute host path, must not exist yet). */
export interface NodeSpec {
  path: string;
  type: 'char' | 'block' | 'fifo';
  major: number;
  minor: number;
  /** Permission bits, setuid/setgid/sticky included. */
  mode: number;
}

// The C locale keeps getfattr's output and every error message stable: non-ASCII bytes stay
// raw bytes and the messages we match on are not translated.
const C_ENV = { LC_ALL: 'C', LANG: 'C' };

/**
 * Reads every extended attribute (all namespaces) of `dir` and everything below it, without
 * following symlinks, in one `getfattr` run. Keys are paths relative to `dir` ('' for `dir`
 * itself) as xattrKey gives them; paths without attributes are absent, so a tree without
 * xattrs gives an empty map.
 */
export async function readXattrsTree(dir: string): Promise<Map<string, Xattrs>> {
  const root = Buffer.from(path.resolve(dir));
  // -h: a symlink reports its own attributes; without it getfattr reads the target's and
  // fails (exit 1) on a dangling link. -P: never descend through a symlinked directory.
  const child = execa('getfattr', ['-R', '-h', '-P', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root.toString()], {
    env: C_ENV,
    encoding: 'buffer',
    buffer: { stdout: false, stderr: true },
    reject: false,
    stdin: 'ignore',
  });

  const result = new Map<string, Xattrs>();
  let current: Xattrs | undefined;
  const parseLine = (line: Buffer): void => {
    if (line.length === 0) {
      current = undefined;
      return;
    }
    if (line.subarray(0, FILE_PREFIX.length).equals(FILE_PREFIX)) {
      const file = unescapeOctal(line.subarray(FILE_PREFIX.length));
      current = new Map();
      result.set(relativeTo(root, file), current);
      return;
    }
    if (line[0] === 0x23 /* '#' */) return;
    const eq = line.indexOf(0x3d /* '=' */);
    if (current === undefined || eq < 0) throw parseError(line);
    // getfattr escapes '=' inside names as \075, so the first '=' ends the name.
    const name = unescapeOctal(line.subarray(0, eq)).toString('utf8');
    const value = decodeValue(line.subarray(eq + 1));
    current.set(name, value);
  };

  let pending: Buffer = Buffer.alloc(0);
  let parseFailure: unknown;
  try {
    for await (const chunk of child.stdout) {
      pending = pending.length === 0 ? (chunk as Buffer) : Buffer.concat([pending, chunk as Buffer]);
      let nl: number;
      while ((nl = pending.indexOf(0x0a)) >= 0) {
        parseLine(pending.subarray(0, nl));
        pending = pending.subarray(nl + 1);
      }
    }
    if (pending.length > 0) parseLine(pending);
  } catch (err) {
    parseFailure = err;
    child.kill();
  }
  const done = await child;
  if (parseFailure !== undefined) throw parseFailure;
  // getfattr exits 1 as soon as one path failed (vanished, unreadable) while still printing
  // the rest; a half-read tree must not pass for a complete one.
  if (done.exitCode !== 0) {
    throw new EngineError('XATTR_READ_FAILED', `read xattrs: getfattr ${dir}: ${stderrText(done.stderr) || `exit ${done.exitCode}`}`, {
      cause: done,
    });
  }
  return result;
}

/**
 * Sets extended attributes on existing paths in one `setfattr --restore` run (symlinks are
 * not followed). With `ignoreUnsupported`, paths whose filesystem or type refuses the
 * attribute (ENOTSUP, EPERM: e.g. user.* on a symlink) are skipped, as docker's extractor
 * does; any other failure throws after setfattr has tried every path.
 */
export async function writeXattrs(entries: readonly XattrSpec[], opts: { ignoreUnsupported?: boolean } = {}): Promise<void> {
  if (entries.length === 0) return;
  // Group by path, keeping first-seen order, so each path gets one "# file:" block.
  const byPath = new Map<string, XattrSpec[]>();
  for (const e of entries) {
    const list = byPath.get(e.path);
    if (list) list.push(e);
    else byPath.set(e.path, [e]);
  }
  const parts: Buffer[] = [];
  for (const [file, list] of byPath) {
    parts.push(Buffer.from(`# file: ${escapeOctal(Buffer.from(file))}\n`));
    for (const e of list) {
      if (e.name.length === 0) throw new EngineError('XATTR_INVALID', `write xattrs: ${file}: empty attribute name`);
      parts.push(Buffer.from(`${escapeOctal(Buffer.from(e.name))}=0x${e.value.toString('hex')}\n`));
    }
    parts.push(Buffer.from('\n'));
  }
  // `--restore=-` reads the dump from stdin, so no temporary file has to be written and removed.
  const done = await execa('setfattr', ['-h', '--restore=-'], {
    env: C_ENV,
    input: Buffer.concat(parts),
    reject: false,
    stdout: 'ignore',
  });
  if (done.exitCode === 0) return;
  const failures = done.stderr
    .split('\n')
    .filter((l) => l.trim() !== '')
    .filter((l) => !(opts.ignoreUnsupported && /: (Operation not supported|Operation not permitted)$/.test(l)));
  if (failures.length > 0 || done.stderr.trim() === '') {
    throw new EngineError('XATTR_WRITE_FAILED', `write xattrs: setfattr: ${failures.join('; ') || `exit ${done.exitCode}`}`, {
      cause: done,
    });
  }
}

/**
 * Creates device nodes and fifos with exact permission bits (umask does not apply) in one
 * `sh` run. Stops at the first failure and throws; nodes made before it stay. Ownership and
 * times are left to the caller.
 */
export async function makeNodes(nodes: readonly NodeSpec[]): Promise<void> {
  if (nodes.length === 0) return;
  const lines = ['set -e'];
  for (const n of nodes) {
    const target = shellQuote(n.path);
    let kind = 'p';
    if (n.type !== 'fifo') {
      if (!Number.isInteger(n.major) || !Number.isInteger(n.minor) || n.major < 0 || n.minor < 0) {
        throw new EngineError('NODE_INVALID', `make nodes: ${n.path}: bad device number ${n.major}:${n.minor}`);
      }
      kind = `${n.type === 'char' ? 'c' : 'b'} ${n.major} ${n.minor}`;
    }
    // mknod -m refuses setuid/setgid/sticky bits; chmod (on the node just made) adds them.
    lines.push(`mknod -m ${octal(n.mode & 0o777)} -- ${target} ${kind}`);
    if (n.mode & 0o7000) lines.push(`chmod ${octal(n.mode & 0o7777)} -- ${target}`);
  }
  const done = await execa('sh', ['-s'], {
    env: C_ENV,
    input: lines.join('\n') + '\n',
    reject: false,
    stdout: 'ignore',
  });
  if (done.exitCode !== 0) {
    throw new EngineError('NODE_CREATE_FAILED', `make nodes: ${done.stderr.trim() || `sh exit ${done.exitCode}`}`, { cause: done });
  }
}

/** Quotes a string for sh: inside single quotes only `'` itself needs care. */
export function shellQuote(s: string): string {
  if (s.includes('\0')) throw new EngineError('NODE_INVALID', `quote path: NUL byte in ${JSON.stringify(s)}`);
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

const FILE_PREFIX = Buffer.from('# file: ');

function octal(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}

/**
 * The readXattrsTree key of a relative path: the path itself when it is UTF-8; otherwise,
 * as no string can hold it, its bytes as latin1 after a NUL, which no path can contain.
 */
export function xattrKey(rel: Buffer): string {
  return isUtf8(rel) ? rel.toString('utf8') : `\0${rel.toString('latin1')}`;
}

function relativeTo(root: Buffer, file: Buffer): string {
  if (file.equals(root)) return '';
  if (file.length > root.length && file[root.length] === 0x2f && file.subarray(0, root.length).equals(root)) {
    return xattrKey(file.subarray(root.length + 1));
  }
  throw new EngineError('XATTR_READ_FAILED', `read xattrs: getfattr reported ${file.toString()} outside ${root.toString()}`);
}

function decodeValue(v: Buffer): Buffer {
  const s = v.toString('latin1');
  // -e hex prints every value, the empty one included ("0x"), as 0x and hex digits.
  if (!/^0x(?:[0-9a-fA-F]{2})*$/.test(s)) throw parseError(v);
  return Buffer.from(s.slice(2), 'hex');
}

function parseError(line: Buffer): EngineError {
  return new EngineError('XATTR_READ_FAILED', `read xattrs: cannot parse getfattr output line ${JSON.stringify(line.toString('latin1'))}`);
}

/** getfattr/setfattr quote bytes as `\ooo` (three octal digits); everything else is literal. */
function unescapeOctal(b: Buffer): Buffer {
  if (!b.includes(0x5c)) return b;
  const out: number[] = [];
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0x5c && i + 3 < b.length && isOctal(b[i + 1]) && isOctal(b[i + 2]) && isOctal(b[i + 3])) {
      out.push(((b[i + 1]! - 0x30) << 6) | ((b[i + 2]! - 0x30) << 3) | (b[i + 3]! - 0x30));
      i += 3;
    } else {
      out.push(b[i]!);
    }
  }
  return Buffer.from(out);
}

function isOctal(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x37;
}

/** Escapes everything but plain printable ASCII; setfattr's unquote reverses any `\ooo`. */
function escapeOctal(b: Buffer): string {
  let out = '';
  for (const c of b) {
    if (c > 0x20 && c < 0x7f && c !== 0x5c && c !== 0x3d) out += String.fromCharCode(c);
    else out += '\\' + c.toString(8).padStart(3, '0');
  }
  return out;
}

function stderrText(stderr: unknown): string {
  if (stderr instanceof Uint8Array) return Buffer.from(stderr).toString('utf8').trim();
  return typeof stderr === 'string' ? stderr.trim() : '';
}
