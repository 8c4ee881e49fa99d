// Raw errors that input causes, turned into user errors at the engine's boundary. A name too
// long for the filesystem (ENAMETOOLONG), a symlink loop (ELOOP), a truncated gzip in an ADD
// archive: retrying cannot fix any of them, and their Node messages name host paths in the
// store. Node's errno errors and zlib's are recognised by their `code`, never by their text.
import { types } from 'node:util';
import { EngineError, UserInputError } from './errors.js';

/**
 * errno codes that what a build was given provokes (its names, link targets, modes, sizes),
 * not the machine: retrying the step gives the same answer. ENOSPC, EIO, EMFILE, EBUSY and
 * the network's codes stay retryable.
 */
const INPUT_ERRNOS = new Set(['ENAMETOOLONG', 'ELOOP', 'EINVAL', 'ENOTDIR', 'EISDIR', 'E2BIG', 'EMLINK', 'EFBIG', 'EOVERFLOW', 'EILSEQ', 'ERANGE']);

/** zlib's codes for a damaged or truncated stream (`unexpected end of file` is Z_BUF_ERROR). */
const ZLIB_CODES = new Set(['Z_DATA_ERROR', 'Z_BUF_ERROR', 'Z_NEED_DICT', 'Z_STREAM_ERROR', 'ERR_BUFFER_TOO_LARGE']);

interface NodeError extends Error {
  code?: unknown;
  syscall?: unknown;
  path?: unknown;
  dest?: unknown;
}

/**
 * `err` as the user should see it: an errno or zlib error that input caused becomes a
 * UserInputError (code `FS_<ERRNO>` or `DECOMPRESS_FAILED`) saying what failed on which path
 * in the image or context; any other error is returned as it is. `storeRoot` is cut out of
 * paths (see hideStorePaths).
 */
export function asEngineError(err: unknown, storeRoot: string): unknown {
  // isNativeError, not instanceof: errors made by Node's own code may come from another realm.
  if (err instanceof EngineError || !types.isNativeError(err)) return err;
  const e = err as NodeError;
  const code = typeof e.code === 'string' ? e.code : undefined;
  if (code !== undefined && ZLIB_CODES.has(code)) {
    return new UserInputError('DECOMPRESS_FAILED', `decompress: the gzip data is damaged or truncated (${e.message})`, { cause: err });
  }
  if (code === undefined || !INPUT_ERRNOS.has(code)) return err;
  // Node's text after the code: "ENAMETOOLONG: name too long, open '/…'" → "name too long".
  const what = /^[A-Z0-9_]+: ([^,]+)/.exec(e.message)?.[1] ?? code;
  const paths = [e.path, e.dest].filter((p): p is string => typeof p === 'string').map((p) => shortPath(hideStorePaths(p, storeRoot)));
  const verb = typeof e.syscall === 'string' ? e.syscall : 'file operation';
  return new UserInputError(`FS_${code}`, `${verb}${paths.length ? ` ${paths.join(' → ')}` : ''}: ${what} (${code})`, { cause: err });
}

/**
 * `message` with paths in the store shown as the user knows them: a path in a step's rootfs
 * (an overlay's merged or upper directory) or in a layer snapshot as the path in the image, a
 * path in an unpacked context as the path in the context, anything else in the store as
 * `$STRATA_HOME/…`.
 */
export function hideStorePaths(message: string, storeRoot: string): string {
  if (storeRoot === '' || !message.includes(storeRoot)) return message;
  const root = escapeRegExp(storeRoot.replace(/\/+$/, ''));
  const seg = `[^/\\s'"]+`;
  return message
    .replace(new RegExp(`${root}/tmp/${seg}(?:/${seg})*?/(?:merged|upper)(?=[/\\s'",:)]|$)`, 'g'), '')
    .replace(new RegExp(`${root}/layers/[0-9a-f]{64}/diff(?=[/\\s'",:)]|$)`, 'g'), '')
    .replace(new RegExp(`${root}/contexts/[0-9a-f]{64}(?=[/\\s'",:)]|$)`, 'g'), '')
    .replace(new RegExp(root, 'g'), '$STRATA_HOME');
}

/** A path a user can read in one line: a name of thousands of characters is cut in the middle. */
function shortPath(p: string): string {
  const shown = p === '' ? '/' : p;
  return shown.length > 200 ? `${shown.slice(0, 120)}…${shown.slice(-60)}` : shown;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
