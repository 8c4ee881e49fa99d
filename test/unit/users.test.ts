// USER as a RUN process gets it: uid, gid and supplementary groups from the image's own files,
// as both docker builders resolve them (the primary group is always among the supplementary ones).
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveExecUser } from '../../engine/steps/users.js';

let rootfs: string;
beforeAll(async () => {
  rootfs = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-users-'));
  await fs.mkdir(path.join(rootfs, 'etc'));
  await fs.writeFile(
    path.join(rootfs, 'etc', 'passwd'),
    ['root:x:0:0:root:/root:/bin/sh', 'daemon:x:1:1:daemon:/usr/sbin:/bin/false', 'app:x:1000:1000::/home/app:/bin/sh', ''].join('\n'),
  );
  await fs.writeFile(path.join(rootfs, 'etc', 'group'), ['root:x:0:', 'daemon:x:1:', 'app:x:1000:', 'audio:x:29:app,daemon', 'video:x:44:app', 'nogroup:x:65534:', ''].join('\n'));
});
afterAll(async () => {
  await fs.rm(rootfs, { recursive: true, force: true });
});

const rows: [string | undefined, { uid: number; gid: number; additionalGids: number[] }][] = [
  [undefined, { uid: 0, gid: 0, additionalGids: [0] }],
  ['daemon', { uid: 1, gid: 1, additionalGids: [1, 29] }],
  ['1', { uid: 1, gid: 1, additionalGids: [1, 29] }],
  ['app', { uid: 1000, gid: 1000, additionalGids: [1000, 29, 44] }],
  // An explicit group drops the memberships.
  ['app:nogroup', { uid: 1000, gid: 65534, additionalGids: [65534] }],
  ['65534:1', { uid: 65534, gid: 1, additionalGids: [1] }],
  // A uid missing from passwd runs with gid 0.
  ['4242', { uid: 4242, gid: 0, additionalGids: [0] }],
];

describe('resolveExecUser', () => {
  test.each(rows)('USER %s', async (spec, want) => {
    const { uid, gid, additionalGids } = await resolveExecUser(rootfs, spec);
    expect({ uid, gid, additionalGids }).toEqual(want);
  });
});

describe('resolveExecUser in a root without /etc/passwd (FROM scratch and a static binary)', () => {
  let bare: string;
  beforeAll(async () => {
    bare = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-users-bare-'));
  });
  afterAll(async () => {
    await fs.rm(bare, { recursive: true, force: true });
  });

  test('no USER runs as 0:0 with home /, as docker does', async () => {
    expect(await resolveExecUser(bare, undefined)).toEqual({ uid: 0, gid: 0, additionalGids: [0], home: '/' });
    expect(await resolveExecUser(bare, '')).toEqual({ uid: 0, gid: 0, additionalGids: [0], home: '/' });
  });

  test('a numeric USER runs without passwd', async () => {
    expect(await resolveExecUser(bare, '123:45')).toMatchObject({ uid: 123, gid: 45 });
  });

  test('USER root by name still needs passwd (docker: unable to find user root)', async () => {
    await expect(resolveExecUser(bare, 'root')).rejects.toThrow('unable to find user root: no matching entries in passwd file');
  });
});
