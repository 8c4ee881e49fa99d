// COPY sources: docker's rules for what is a pattern, matched against a real directory, and
// the patterns themselves, one path component at a time in Go's filepath.Match syntax.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { matchSources, patternToRegExp } from '../../engine/steps/wildcard.js';

let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-wildcard-'));
  await fs.mkdir(path.join(root, 'src'));
  for (const name of ['src\\a.txt', 'src/a.txt', 'srca.txt', 'b*.txt', 'bx.txt']) await fs.writeFile(path.join(root, name), name);
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const rows: [string, string[]][] = [
  // No unescaped `*?[`: a plain name, its backslash included (paths under `# escape=\``).
  ['src\\a.txt', ['src\\a.txt']],
  ['src/a.txt', ['src/a.txt']],
  // A pattern: `\` escapes the next character, so `src\a*` is `srca*`.
  ['src\\a*', ['srca.txt']],
  // An escaped wildcard alone does not make a pattern either: the name is looked up as written.
  ['b\\*.txt', []],
  ['b*.txt', ['b*.txt', 'bx.txt']],
];

describe('matchSources', () => {
  test.each(rows)('%s', async (source, want) => {
    expect(await matchSources(root, source)).toEqual(want);
  });
});

const matches = (pattern: string, names: string[]) => names.filter((n) => patternToRegExp(pattern).test(n));

describe('patternToRegExp', () => {
  test.each([
    ['*.txt', ['a.txt', 'b.txt', '.txt', 'a.log', 'dir/a.txt'], ['a.txt', 'b.txt', '.txt']],
    ['x?.log', ['x1.log', 'x10.log', 'x.log'], ['x1.log']],
    ['[a-c].txt', ['a.txt', 'c.txt', 'd.txt', 'ab.txt'], ['a.txt', 'c.txt']],
    ['[^a-c].txt', ['a.txt', 'd.txt', '!.txt'], ['d.txt', '!.txt']],
    // `!` does not negate in Go's syntax (both docker builders use it): it is a member.
    ['[!a-c].txt', ['a.txt', 'd.txt', '!.txt'], ['a.txt', '!.txt']],
    ['\\*.txt', ['*.txt', 'a.txt'], ['*.txt']],
  ])('%s', (pattern, names, expected) => {
    expect(matches(pattern, names)).toEqual(expected);
  });
});
