// COPY source matching: docker matches each source with Go's filepath.Match, component by
// component, against paths in the context (so `*` never crosses a `/`).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { PathEscapeError } from '../errors.js';
import { cleanRelative } from '../fsutil/scoped.js';

/** Context-relative paths the source names; [] when nothing matches. Sorted. */
export async function matchSources(contextDir: string, source: string): Promise<string[]> {
  const clean = cleanRelative(source);
  if (clean === undefined) throw new PathEscapeError(`COPY failed: forbidden path outside the build context: ${source}`);
  if (clean === '') return [''];
  const parts = clean.split('/');
  if (!parts.some(hasMeta)) {
    const exists = await fs.lstat(path.join(contextDir, clean)).then(() => true, () => false);
    return exists ? [clean] : [];
  }
  let current = [''];
  for (const part of parts) {
    const next: string[] = [];
    for (const dir of current) {
      if (!hasMeta(part)) {
        const candidate = dir ? `${dir}/${part}` : part;
        if (await fs.lstat(path.join(contextDir, candidate)).then(() => true, () => false)) next.push(candidate);
        continue;
      }
      const re = patternToRegExp(part);
      const names = await fs.readdir(path.join(contextDir, dir)).catch(() => [] as string[]);
      for (const name of names.sort()) if (re.test(name)) next.push(dir ? `${dir}/${name}` : name);
    }
    current = next;
  }
  return current;
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
      const negate = body.startsWith('^') || body.startsWith('!');
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
