// COPY source matching against a real directory: docker's rules for what is a pattern.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { matchSources } from '../../engine/steps/wildcard.js';

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
