// Symbolic --chmod modes: mode string, starting mode, file or directory → the mode chmod(1) gives.
import { applySymbolicMode, checkSymbolicMode } from '../../engine/plan/mode.js';

const rows: [string, number, boolean, number][] = [
  ['+x', 0o644, false, 0o755],
  ['u+x', 0o644, false, 0o744],
  ['u+x,g-w', 0o664, false, 0o744],
  ['go-rwx', 0o755, true, 0o700],
  ['a=rX', 0o600, false, 0o444],
  ['a=rX', 0o700, false, 0o555],
  ['a=rX', 0o700, true, 0o555],
  ['u=rwX,go=rX', 0o640, false, 0o644],
  ['u=rwX,go=rX', 0o750, true, 0o755],
  ['g=u', 0o640, false, 0o660],
  ['o=g', 0o654, false, 0o655],
  ['u+s', 0o755, false, 0o4755],
  ['g+s', 0o755, true, 0o2755],
  ['+t', 0o777, true, 0o1777],
  ['u=', 0o755, false, 0o055],
  ['u-x+w', 0o500, false, 0o600],
  ['a-s', 0o6755, false, 0o755],
];

describe('applySymbolicMode', () => {
  test.each(rows)('%s on %o (dir: %p) gives %o', (mode, start, isDir, want) => {
    expect(checkSymbolicMode(mode)).toBeUndefined();
    expect(applySymbolicMode(mode, start, isDir).toString(8)).toBe(want.toString(8));
  });
});

describe('checkSymbolicMode rejects', () => {
  test.each(['', 'x', 'u', 'u+q', 'u+x,', ',u+x', 'z+x', 'u+ug', '755x', 'u+x g-w'])('%p', (mode) => {
    expect(checkSymbolicMode(mode)).toEqual(expect.any(String));
  });
});
