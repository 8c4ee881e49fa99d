// COPY source patterns: one path component at a time, with Go's filepath.Match syntax.
import { patternToRegExp } from '../../engine/steps/wildcard.js';

const matches = (pattern: string, names: string[]) => names.filter((n) => patternToRegExp(pattern).test(n));

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
