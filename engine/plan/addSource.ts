// What an ADD source names: a path in the build context, a file to download, or a git
// repository. Recognised as BuildKit's Dockerfile frontend does
// (https://docs.docker.com/reference/dockerfile/#add), plus strata's file:// git sources.

export type AddSource =
  | { kind: 'local'; path: string }
  | { kind: 'http'; url: string }
  | {
      kind: 'git';
      /** What `git fetch` is given: the source without its `#fragment`. */
      remote: string;
      /** Branch, tag or commit; the remote's HEAD when absent. */
      ref?: string;
      /** A directory inside the repository whose contents are added. */
      subdir?: string;
      /** A file:// repository: it reads the worker's own filesystem. */
      local: boolean;
    };

const SCP_LIKE = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:/;
const ANY_URL = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * Classifies one expanded ADD source. Git, as BuildKit: `git@host:path`, `ssh://` and
 * `git://` URLs, and http(s) URLs whose path ends in `.git`. strata adds file:// URLs whose
 * path ends in `.git` (a bare repository on the worker's disk). Other http(s) URLs are
 * downloads; another scheme is undefined (the caller rejects it); the rest is a path.
 */
export function classifyAddSource(src: string): AddSource | undefined {
  if (SCP_LIKE.test(src)) return gitSource(src, false);
  if (!ANY_URL.test(src)) return { kind: 'local', path: src };
  const scheme = src.slice(0, src.indexOf(':')).toLowerCase();
  if (scheme === 'ssh' || scheme === 'git') return gitSource(src, false);
  if (scheme !== 'http' && scheme !== 'https' && scheme !== 'file') return undefined;
  let url: URL;
  try {
    url = new URL(src);
  } catch {
    return undefined;
  }
  if (url.pathname.endsWith('.git')) return gitSource(src, scheme === 'file');
  if (scheme === 'file') return undefined;
  return { kind: 'http', url: src };
}

/** `REMOTE#REF:SUBDIR`, either part optional. */
function gitSource(src: string, local: boolean): AddSource {
  const hash = src.indexOf('#');
  if (hash < 0) return { kind: 'git', remote: src, local };
  const fragment = src.slice(hash + 1);
  const colon = fragment.indexOf(':');
  const ref = colon < 0 ? fragment : fragment.slice(0, colon);
  const subdir = colon < 0 ? '' : fragment.slice(colon + 1);
  return { kind: 'git', remote: src.slice(0, hash), ref: ref || undefined, subdir: subdir || undefined, local };
}

/** The name a downloaded file gets under a directory destination: the URL path's last part. */
export function downloadName(url: string): string {
  let base = '';
  try {
    // Decoded first, as Go's url.Path is: an encoded `/` still separates.
    base = decodeURIComponent(new URL(url).pathname).split('/').filter(Boolean).pop() ?? '';
  } catch {
    // unparsable or a bad escape: the fallback name below
  }
  // BuildKit names a file whose URL has no path this way.
  return base === '' || base === '.' || base === '..' ? '__unnamed__' : base;
}
