// The docker CLI's printing, rebuilt: go-units sizes and ages, Go's tabwriter alignment with
// docker's settings, and the small --format template language. Expected strings are what
// docker 20/28 print (sizes and ages from go-units' own tables).
import { formatRows, parseTemplate, render, tabwrite } from '../../client/template.js';
import { ellipsis } from '../../client/commands/history.js';
import { globRegExp } from '../../client/commands/images.js';
import { goG, goTimeString, humanDuration, humanSize, rfc3339 } from '../../client/units.js';

describe('humanSize (go-units HumanSizeWithPrecision, decimal)', () => {
  test.each([
    [0, 3, '0B'],
    [8, 3, '8B'],
    [999, 3, '999B'],
    [1000, 3, '1kB'],
    [1984294, 3, '1.98MB'],
    [1984294, 4, '1.984MB'],
    [4_260_000, 3, '4.26MB'],
    [999_600, 3, '1e+03kB'], // Go's %.3g rounds up into exponent form; docker prints it so
    [12_345, 3, '12.3kB'],
    [123_456_789, 3, '123MB'],
    [5_000_000_000, 4, '5GB'],
  ])('%d bytes, precision %d: %s', (bytes, precision, want) => {
    expect(humanSize(bytes, precision)).toBe(want);
  });

  test.each([
    [0.0001, 3, '0.0001'],
    [0.00001, 3, '1e-05'],
    [1.5, 3, '1.5'],
    [100, 2, '1e+02'],
  ])("Go's %%.*g of %d (precision %d): %s", (v, p, want) => {
    expect(goG(v, p)).toBe(want);
  });
});

describe('humanDuration (go-units)', () => {
  const s = 1000;
  const m = 60 * s;
  const h = 60 * m;
  const d = 24 * h;
  test.each([
    [500, 'Less than a second'],
    [1 * s, '1 second'],
    [59 * s, '59 seconds'],
    [60 * s, 'About a minute'],
    [119 * s, 'About a minute'],
    [2 * m, '2 minutes'],
    [59 * m, '59 minutes'],
    [60 * m, 'About an hour'],
    [89 * m, 'About an hour'],
    [90 * m, '2 hours'], // hours round to nearest
    [47 * h, '47 hours'],
    [48 * h, '2 days'],
    [13 * d, '13 days'],
    [14 * d, '2 weeks'],
    [59 * d, '8 weeks'],
    [60 * d, '2 months'],
    [729 * d, '24 months'],
    [730 * d, '2 years'],
  ])('%d ms: %s', (ms, want) => {
    expect(humanDuration(ms)).toBe(want);
  });

  test("CreatedAt forms: Go's Time.String for images, RFC 3339 for history", () => {
    expect(goTimeString(Date.UTC(2024, 4, 1, 12, 0, 7, 900))).toBe('2024-05-01 12:00:07 +0000 UTC');
    expect(rfc3339(Date.UTC(2024, 4, 1, 12, 0, 7, 900))).toBe('2024-05-01T12:00:07Z');
  });
});

describe('tabwrite (text/tabwriter: minwidth 10, padding 3)', () => {
  test('a column is as wide as its widest cell plus 3, at least 10; the last cell is not padded', () => {
    const out = tabwrite('REPOSITORY\tTAG\tIMAGE ID\tSIZE\nstrata-test-busybox\tlatest\t1d28b53bd5a1\t1.98MB\n');
    expect(out).toBe(['REPOSITORY            TAG       IMAGE ID       SIZE', 'strata-test-busybox   latest    1d28b53bd5a1   1.98MB', ''].join('\n'));
  });

  test('a line with fewer cells ends the column block, as in Go', () => {
    expect(tabwrite('a\tb\tc\nlonger-cell\nx\ty\n')).toBe(['a         b         c', 'longer-cell', 'x         y', ''].join('\n'));
  });
});

describe('--format templates', () => {
  const row = { ID: 'abc', Repository: 'app', Tag: '1', Digest: '<none>', Nested: { Env: ['A=1', 'B=2'], Labels: { k: 'v' } } };

  test.each([
    ['{{.ID}}', 'abc'],
    ['{{ .Repository }}:{{.Tag}}', 'app:1'],
    ['{{json .Digest}}', '"\\u003cnone\\u003e"'],
    ['{{.Nested.Env}}', '[A=1 B=2]'],
    ['{{json .Nested.Labels}}', '{"k":"v"}'],
    ['{{.Nested.Labels}}', 'map[k:v]'],
  ])('%s', (tpl, want) => {
    expect(render(parseTemplate(tpl), row)).toBe(want);
  });

  test('an unknown field or action is an error naming it', () => {
    expect(() => render(parseTemplate('{{.Nope}}'), row)).toThrow(/can't evaluate field Nope/);
    expect(() => parseTemplate('{{range .X}}')).toThrow(/unsupported template action \{\{range \.X\}\}/);
  });

  test('table: a header row from the field names, \\t escapes, aligned; json: one object per row with sorted keys', () => {
    const rows = [
      { ID: 'abc', Repository: 'app' },
      { ID: 'defghi', Repository: 'a-much-longer-name' },
    ];
    const spec = { defaultRow: '', headers: { ID: 'IMAGE ID', Repository: 'REPOSITORY' } };
    expect(formatRows('table {{.ID}}\\t{{.Repository}}', rows, spec)).toBe('IMAGE ID   REPOSITORY\nabc        app\ndefghi     a-much-longer-name\n');
    expect(formatRows('json', [{ b: 1, a: '<x>' }], spec)).toBe('{"a":"\\u003cx\\u003e","b":1}\n');
    expect(formatRows('{{.ID}}', rows, spec)).toBe('abc\ndefghi\n');
  });

  test("ellipsis: docker's 45-character CREATED BY", () => {
    expect(ellipsis('x'.repeat(45), 45)).toBe('x'.repeat(45));
    expect(ellipsis('x'.repeat(46), 45)).toBe(`${'x'.repeat(44)}…`);
  });
});

describe('reference patterns (Go path.Match)', () => {
  test.each([
    ['app', 'app', true],
    ['app*', 'app-2', true],
    ['*', 'team/app', false], // * stops at /
    ['*/*', 'team/app', true],
    ['app:1', 'app:1', true],
    ['app:[0-9]', 'app:7', true],
    ['a?p', 'app', true],
  ])('%s matches %s: %s', (pattern, name, want) => {
    expect(globRegExp(pattern).test(name)).toBe(want);
  });
});
