// Symbolic file modes as chmod(1) writes them (`u+x,go-w`, `a=rX`, `g=u`): checked when the
// Dockerfile is planned, applied to each copied entry (the result depends on the entry's mode
// and on whether it is a directory). https://man.freebsd.org/cgi/man.cgi?chmod
//
// Grammar: mode = clause *("," clause); clause = *who 1*action; who = u|g|o|a;
// action = op (*perm | permcopy); op = +|-|=; perm = r|w|x|X|s|t; permcopy = u|g|o.
// A clause without `who` applies to all (chmod(1) would also apply its umask; a build has none).

const CLAUSE = /^([ugoa]*)((?:[-+=](?:[ugo]|[rwxXst]*))+)$/;
const ACTION = /([-+=])([ugo]|[rwxXst]*)/g;

/** Why `mode` is not a symbolic mode, or undefined when it is one. */
export function checkSymbolicMode(mode: string): string | undefined {
  if (mode === '') return 'empty mode';
  for (const clause of mode.split(',')) {
    if (!CLAUSE.test(clause)) return `${JSON.stringify(clause)} is not [ugoa]*[-+=][rwxXst]* or [ugoa]*[-+=][ugo]`;
  }
  return undefined;
}

/** The permission bits of each `who`, with its special bit (setuid, setgid, sticky). */
const WHO_BITS: Record<string, number> = { u: 0o4700, g: 0o2070, o: 0o1007, a: 0o7777 };

/** Applies a symbolic mode (already checked) to `mode` (permission bits) of a file or directory. */
export function applySymbolicMode(symbolic: string, mode: number, isDir: boolean): number {
  let cur = mode & 0o7777;
  for (const clause of symbolic.split(',')) {
    const m = CLAUSE.exec(clause);
    if (!m) throw new Error(`apply mode: ${JSON.stringify(symbolic)} is not a symbolic mode`);
    const who = m[1] === '' ? 'a' : m[1]!;
    const whoMask = [...who].reduce((acc, w) => acc | WHO_BITS[w]!, 0);
    for (const [, op, perms] of m[2]!.matchAll(ACTION)) {
      let bits = 0;
      if (perms === 'u' || perms === 'g' || perms === 'o') {
        const shift = perms === 'u' ? 6 : perms === 'g' ? 3 : 0;
        const rwx = (cur >> shift) & 0o7;
        bits = (rwx << 6) | (rwx << 3) | rwx;
      } else {
        for (const p of perms!) {
          if (p === 'r') bits |= 0o444;
          else if (p === 'w') bits |= 0o222;
          else if (p === 'x') bits |= 0o111;
          else if (p === 'X' && (isDir || (cur & 0o111) !== 0)) bits |= 0o111;
          else if (p === 's') bits |= 0o6000;
          else if (p === 't') bits |= 0o1000;
        }
      }
      bits &= whoMask;
      if (op === '+') cur |= bits;
      else if (op === '-') cur &= ~bits;
      else cur = (cur & ~whoMask) | bits;
    }
  }
  return cur;
}
