// COPY source matching: docker matches each source with Go's filepath.Match, component by
// component, against paths in the source root (so `*` never crosses a `/`). The root is the
// build context or, for `COPY --from`, another rootfs: every lookup goes through resolveInRoot,
// so a symlink on the way never leads outside it.
import { promises as fs } from 'node:fs';
import { PathEscapeError } from '../errors.js';
import { cleanRelative, resolveInRoot } from '../fsutil/scoped.js';

/** Root-relative paths the source names; [] when nothing matches. Sorted. */
export async function matchSources(root: string, source: string): Promise<string[]> {
  const clean = cleanRelative(source);
  if (clean === undefined) throw new PathEscapeError(`COPY failed: forbidden path outside the build context: ${source}`);
  if (clean === '') return [''];
  // A component that is not a directory means "not found", as it does for docker.
  const exists = async (rel: string) =>
    resolveInRoot(root, rel)
      .then((host) => fs.lstat(host))
      .then(
        () => true,
        () => false,
      );
  const parts = clean.split('/');
  // Like docker, a source with no unescaped `*?[` is a plain path, backslashes and all
  // (`COPY src\a.txt` under `# escape=\``); only a pattern gives `\` its escaping meaning.
  if (!hasWildcard(clean)) return (await exists(clean)) ? [clean] : [];
  let current = [''];
  for (const part of parts) {
    const next: string[] = [];
    for (const dir of current) {
      if (!hasMeta(part)) {
        const candidate = dir ? `${dir}/${part}` : part;
        if (await exists(candidate)) next.push(candidate);
        continue;
      }
      const re = patternToRegExp(part);
      const names = await resolveInRoot(root, dir, { followFinal: true })
        .then((dirHost) => fs.readdir(dirHost))
        .catch(() => [] as string[]);
      for (const name of names.sort()) if (re.test(name)) next.push(dir ? `${dir}/${name}` : name);
    }
    current = next;
  }
  return current;
}

function hasWildcard(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === '*' || s[i] === '?' || s[i] === '[') return true;
  }
  return false;
}

function hasMeta(s: string): boolean {
  return /[*?[\\]/.test(s);
}

/** One path component's pattern as a RegExp: `*`, `?`, `[a-z]`, `[^x]`, `\` escapes. */
export function patternToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) re += escapeRe(pattern[++i]!);
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw new PathEscapeError(`COPY failed: syntax error in pattern ${pattern}`);
      let body = pattern.slice(i + 1, end);
      // Go's filepath.Match negates a class with `^` only: `[!a]` matches `!` or `a`.
      const negate = body.startsWith('^');
      if (negate) body = body.slice(1);
      re += `[${negate ? '^' : ''}${body.replace(/[\]\\]/g, '\\$&')}]`;
      i = end;
    } else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`, 's');
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
