// The linear-time shell pattern matcher behind `${V#p}`, `${V%%p}` and `${V/p/r}`: it must pick
// the match the RegExp translation it replaced picked (leftmost, stars' preference), and finish
// on patterns that made that RegExp backtrack for minutes.
import { processWord } from '../../engine/dockerfile/expand.js';
import { MAX_EXPANDED_LENGTH } from '../../engine/dockerfile/limits.js';

// The RegExp translation expand.ts used before: the oracle for the matcher's choices.
function oracleRegExp(pattern: string, greedy: boolean, anchored: boolean): RegExp {
  const chars = Array.from(pattern);
  let source = anchored ? '^' : '';
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === '*') source += greedy ? '.*' : '.*?';
    else if (ch === '?') source += '.';
    else if (ch === '\\') {
      const escaped = chars[i + 1]!;
      if (escaped === '}' || escaped === '/') continue;
      source += '\\' + escaped;
      i++;
    } else source += /[[\]{}.+()|^$]/.test(ch) ? '\\' + ch : ch;
  }
  return new RegExp(source, 'u');
}

const reverse = (s: string) => Array.from(s).reverse().join('');
function reversePattern(p: string): string {
  const chars = Array.from(p);
  const tokens: string[] = [];
  for (let i = 0; i < chars.length; i++) {
    if (chars[i] === '\\' && i + 1 < chars.length) tokens.push('\\' + chars[++i]);
    else tokens.push(chars[i]!);
  }
  return tokens.reverse().join('');
}

function oracle(op: '#' | '##' | '%' | '%%' | '/' | '//', value: string, pattern: string, repl: string): string {
  const greedy = op.length === 2 || op === '/';
  if (op === '/' || op === '//') {
    const re = oracleRegExp(pattern, true, false);
    if (op === '//') return value.replace(new RegExp(re.source, 'gu'), () => repl);
    const m = re.exec(value);
    return m === null ? value : value.slice(0, m.index) + repl + value.slice(m.index + m[0].length);
  }
  if (op[0] === '#') {
    const m = oracleRegExp(pattern, greedy, true).exec(value);
    return m === null ? value : value.slice(m[0].length);
  }
  const m = oracleRegExp(reversePattern(pattern), greedy, true).exec(reverse(value));
  return m === null ? value : reverse(reverse(value).slice(m[0].length));
}

/** mulberry32: a small seeded PRNG, so a failing case can be replayed. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('the matcher picks what the RegExp picked', () => {
  test('on 5,000 random patterns and values', () => {
    const rand = prng(20240611);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const patternParts = ['a', 'b', '*', '?', '\\*', '\\?', '.', '\\\\', 'ab', '한'];
    const valueParts = ['a', 'b', '.', '*', '?', '\\', '\n', '한', 'ab'];
    const ops = ['#', '##', '%', '%%', '/', '//'] as const;
    for (let i = 0; i < 5000; i++) {
      const pattern = Array.from({ length: Math.floor(rand() * 6) }, () => pick(patternParts)).join('');
      const value = Array.from({ length: Math.floor(rand() * 10) }, () => pick(valueParts)).join('');
      const op = pick(ops);
      // `${V//R}` would read as `//` with the pattern `R`.
      if (op.startsWith('/') && pattern === '') continue;
      const word = op.startsWith('/') ? `\${V${op}${pattern.replace(/\//g, '\\/')}/R}` : `\${V${op}${pattern}}`;
      const want = oracle(op, value, pattern, 'R');
      expect({ word, value, got: processWord(word, { V: value }) }).toEqual({ word, value, got: want });
    }
  });
});

describe('patterns that backtrack exponentially in a RegExp', () => {
  // Without the matcher each of these runs for hours; the jest timeout is the bound.
  const value = 'a'.repeat(2000);
  test.each([
    ['${V/' + '*a'.repeat(30) + 'b/x}', value],
    ['${V//' + '?*'.repeat(30) + 'b/x}', value],
    ['${V##' + '*a'.repeat(30) + 'b}', value],
    ['${V%%' + 'a*'.repeat(30) + 'b}', value],
    ['${V%' + '*a'.repeat(30) + 'b}', value],
  ])(
    '%s finishes and leaves the value',
    (word, expected) => {
      expect(processWord(word, { V: value })).toBe(expected);
    },
    10_000,
  );

  test('a match that needs too many steps fails with a clear error', () => {
    const big = 'a'.repeat(200_000);
    expect(() => processWord('${V//' + '*a'.repeat(100) + 'b/x}', { V: big })).toThrow(/pattern matching needs more than \d+ steps/);
  }, 10_000);
});

describe('expansion size', () => {
  test('a word that grows past the limit fails, naming the word', () => {
    const half = 'x'.repeat(MAX_EXPANDED_LENGTH / 2 + 1);
    expect(() => processWord('$A$A', { A: half })).toThrow(`failed to process "$A$A": the expansion is longer than ${MAX_EXPANDED_LENGTH} characters`);
    expect(() => processWord('"$A$A"', { A: half })).toThrow('the expansion is longer than');
    expect(() => processWord('${A//?/$A}', { A: 'x'.repeat(1000) })).toThrow('the expansion is longer than');
    expect(processWord('$A', { A: half })).toBe(half);
  });
});
