// Go's fmt forms that docker's history text uses, checked against what Go prints.
import { formatGoDuration, goQuoteRune, parseGoDuration } from '../../engine/plan/gofmt.js';

test.each([
  ['0', 0],
  ['30s', 30e9],
  ['1m30s', 90e9],
  ['1.5h', 5400e9],
  ['250ms', 250e6],
  ['2h45m', 9900e9],
  ['10us', 10e3],
  ['-3s', -3e9],
])('parseGoDuration(%s) = %d ns', (text, ns) => {
  expect(parseGoDuration(text)).toBe(ns);
});

test.each(['', '5', 's', '1x', '1s2', '--1s'])('parseGoDuration(%j) is malformed', (text) => {
  expect(parseGoDuration(text)).toBeUndefined();
});

test.each([
  [0, '0s'],
  [300e9, '5m0s'],
  [1.5e9, '1.5s'],
  [3600e9, '1h0m0s'],
  [3723.5e9, '1h2m3.5s'],
  [250e6, '250ms'],
  [1500, '1.5µs'],
  [7, '7ns'],
])('formatGoDuration(%d) = %s', (ns, text) => {
  expect(formatGoDuration(ns)).toBe(text);
});

test.each([
  [0, "'\\x00'"],
  [3, "'\\x03'"],
  [10, "'\\n'"],
  [65, "'A'"],
  [39, "'\\''"],
  [127, "'\\x7f'"],
])('goQuoteRune(%d) = %s', (n, text) => {
  expect(goQuoteRune(n)).toBe(text);
});
