// The one gate for what enters a mount's option string (`mount -o`, overlay's lowerdir list,
// an OCI mount's options). The kernel splits that string at `,`, overlay splits its
// directory lists at `:` and unescapes `\`, and a relative directory resolves against the
// mounting process's cwd: a user-named path in there could become another option or another
// directory (`x:..` read the host's). So only names of strata's own making go in (hex short
// links, fixed staging names), each checked here; user-named paths reach a mount only as a
// symlink target or a runc `source`, which no one parses.
import { EngineError } from '../errors.js';

/** Letters, digits, `.`, `_`, `-`, `+`, `@` and `/`: nothing a mount option parser splits at. */
const SAFE_PATH = /^[A-Za-z0-9._+@/-]+$/;
const SAFE_VALUE = /^[A-Za-z0-9._+-]+$/;

/**
 * `p` unchanged when it may stand in a mount option: no separator, escape or blank, no `..`
 * component (a relative one resolves against a cwd the caller sets to a directory of its own).
 */
export function mountOptionPath(p: string): string {
  if (!SAFE_PATH.test(p) || p.split('/').some((c) => c === '..')) {
    throw new EngineError('MOUNT_OPTION_UNSAFE', `mount: ${JSON.stringify(p)} cannot stand in mount options`);
  }
  return p;
}

/** An option's value (a size, a mode) unchanged when it holds no separator. */
export function mountOptionValue(v: string | number): string {
  const s = String(v);
  if (!SAFE_VALUE.test(s)) throw new EngineError('MOUNT_OPTION_UNSAFE', `mount: ${JSON.stringify(s)} cannot stand in mount options`);
  return s;
}
