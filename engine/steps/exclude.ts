// COPY/ADD --exclude: the patterns (.dockerignore's syntax) as a predicate on source-relative
// paths. One definition for the copy and for the instruction cache's checksum of its sources.
import ignore from '@balena/dockerignore';

/** True for a path the patterns leave out; never for '' (the source itself). */
export function exclusionOf(patterns: string[] | undefined): (rel: string) => boolean {
  if (!patterns || patterns.length === 0) return () => false;
  // The package is CommonJS with a Babel-style `default` export.
  const ig = ignore.default({ ignorecase: false }).add(patterns);
  return (rel) => rel !== '' && ig.ignores(rel);
}
