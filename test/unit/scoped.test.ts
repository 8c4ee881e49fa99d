// atInRoot: a named table of symlink-escape cases, built in code; the clean-ups after a RUN
// step stand on it, so a symlink anywhere on the way must lead nowhere, and the host's
// files outside the root must survive.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { atInRoot, lstatInRoot } from '../../engine/fsutil/scoped.js';
import { mountOptionPath, mountOptionValue } from '../../engine/runtime/mountopts.js';
import { isHostAddress } from '../../engine/runtime/network.js';

let base: string;
let root: string;
let outside: string;

beforeEach(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-scoped-'));
  root = path.join(base, 'root');
  outside = path.join(base, 'outside');
  // the host's side: an empty file and an empty directory the clean-up must not touch
  await fs.mkdir(path.join(outside, 'dir', 'empty'), { recursive: true });
  await fs.writeFile(path.join(outside, 'dir', 'hosts'), '');
  await fs.mkdir(path.join(root, 'real', 'empty'), { recursive: true });
  await fs.writeFile(path.join(root, 'real', 'hosts'), '');
});

afterEach(() => fs.rm(base, { recursive: true, force: true }));

/** Removes what atInRoot reaches at `rel`; returns whether it reached anything. */
const removeAt = async (rel: string) => (await atInRoot(root, rel, (e) => e.remove().then(() => true))) ?? false;

interface EscapeCase {
  name: string;
  /** Makes the trap inside root. */
  plant: () => Promise<void>;
  /** The path the clean-up is given (a function when it names the outside dir). */
  rel: string | (() => string);
}

const escapes: EscapeCase[] = [
  { name: 'parent is an absolute symlink out', plant: () => fs.symlink(path.join(outside, 'dir'), path.join(root, 'etc')), rel: '/etc/hosts' },
  { name: 'parent is a relative symlink out', plant: () => fs.symlink('../outside/dir', path.join(root, 'etc')), rel: 'etc/hosts' },
  { name: 'grandparent is a symlink out', plant: () => fs.symlink(outside, path.join(root, 'a')), rel: '/a/dir/empty' },
  { name: 'parent is a symlink to /', plant: () => fs.symlink('/', path.join(root, 'up')), rel: () => `/up${outside}/dir/hosts` },
  { name: 'last component is a symlink to a host file', plant: () => fs.symlink(path.join(outside, 'dir', 'hosts'), path.join(root, 'hosts')), rel: '/hosts' },
  { name: 'last component is a symlink to a host dir', plant: () => fs.symlink(path.join(outside, 'dir', 'empty'), path.join(root, 'empty')), rel: '/empty' },
  { name: 'dot-dot climbs out', plant: async () => {}, rel: '../outside/dir/hosts' },
  { name: 'dot-dot after a real dir climbs out', plant: async () => {}, rel: '/real/../../outside/dir/hosts' },
  {
    name: 'symlink chain out',
    plant: async () => {
      await fs.symlink('b', path.join(root, 'a'));
      await fs.symlink(path.join(outside, 'dir'), path.join(root, 'b'));
    },
    rel: '/a/empty',
  },
];

test.each(escapes)('$name: nothing outside the root is reached or removed', async ({ plant, rel: relOf }) => {
  await plant();
  const rel = typeof relOf === 'string' ? relOf : relOf();
  const last = path.basename(rel);
  const removedLink = await removeAt(rel);
  // the host's files are all still there
  expect((await fs.stat(path.join(outside, 'dir', 'hosts'))).isFile()).toBe(true);
  expect((await fs.stat(path.join(outside, 'dir', 'empty'))).isDirectory()).toBe(true);
  // only a symlink that is itself the last component inside root may go (as unlink would)
  if (removedLink) expect(await fs.lstat(path.join(root, last)).catch(() => undefined)).toBeUndefined();
});

test('a plain path inside the root is reached, listed and removed', async () => {
  expect(await atInRoot(root, '/real', (e) => e.list())).toEqual(['empty', 'hosts']);
  expect(await removeAt('/real/hosts')).toBe(true);
  expect(await removeAt('real/empty')).toBe(true);
  expect(await removeAt('/real')).toBe(true);
  expect(await fs.readdir(root)).toEqual([]);
});

test('lstatInRoot sees a symlink as a symlink and nothing through it', async () => {
  await fs.symlink(path.join(outside, 'dir'), path.join(root, 'etc'));
  expect((await lstatInRoot(root, '/etc'))?.isSymbolicLink()).toBe(true);
  expect(await lstatInRoot(root, '/etc/hosts')).toBeUndefined();
  expect((await lstatInRoot(root, '/real/hosts'))?.isFile()).toBe(true);
  expect(await lstatInRoot(root, '/missing/x')).toBeUndefined();
});

test('a removal of a non-empty directory fails rather than recursing', async () => {
  await expect(removeAt('/real')).rejects.toThrow(/ENOTEMPTY/);
});

test.each([
  ['l/0123abcd', true],
  ['tmp/run-0123456789ab-0123456789ab/upper', true],
  ['/var/lib/strata/tmp/x/lower', true],
  ['x:..', false],
  ['a,b', false],
  ['q\\w', false],
  ['new\nline', false],
  ['sp ace', false],
  ['lowerdir=x', false],
  ['../up', false],
  ['a/../../b', false],
  ['', false],
])('mountOptionPath(%j) accepts it: %s', (p, ok) => {
  if (ok) expect(mountOptionPath(p)).toBe(p);
  else expect(() => mountOptionPath(p)).toThrow(/cannot stand in mount options/);
});

test('mountOptionValue takes sizes and refuses separators', () => {
  expect(mountOptionValue(65536)).toBe('65536');
  expect(() => mountOptionValue('1m,exec')).toThrow(/cannot stand/);
});

test.each([
  ['127.0.0.1', true],
  ['127.8.9.10', true],
  ['0.0.0.0', true],
  ['169.254.169.254', true],
  ['::1', true],
  ['0:0:0:0:0:0:0:1', true],
  ['::', true],
  ['::ffff:127.0.0.1', true],
  ['fe80::1', true],
  ['febf::1', true],
  ['10.213.0.2', false],
  ['8.8.8.8', false],
  ['2001:db8::1', false],
  ['fec0::1', false],
  ['not-an-ip', false],
])('isHostAddress(%s) is %s', (a, hostOwn) => expect(isHostAddress(a)).toBe(hostOwn));

test("the host's own interface addresses are its own", () => {
  const own = Object.values(os.networkInterfaces())
    .flat()
    .filter((a) => a && !a.internal);
  for (const a of own) expect(isHostAddress(a!.address.split('%')[0]!)).toBe(true);
});
