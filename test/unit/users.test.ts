// USER as a RUN process gets it: uid, gid and supplementary groups from the rootfs's
// /etc/passwd and /etc/group, with docker's rules.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveExecUser } from '../../engine/steps/users.js';

let rootfs: string;
beforeAll(async () => {
  rootfs = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-users-'));
  await fs.mkdir(path.join(rootfs, 'etc'));
  await fs.writeFile(path.join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n');
  await fs.writeFile(path.join(rootfs, 'etc', 'group'), 'root:x:0:\nwheel:x:10:root\napp:x:1000:\nx:x:2000:app\nstaff:x:50:\n');
});
afterAll(() => fs.rm(rootfs, { recursive: true, force: true }));

test.each([
  // The primary gid is always a supplementary group too, then the memberships.
  ['app', { uid: 1000, gid: 1000, additionalGids: [1000, 2000], home: '/home/app' }],
  [undefined, { uid: 0, gid: 0, additionalGids: [0, 10], home: '/root' }],
  // An explicit group drops the memberships.
  ['app:staff', { uid: 1000, gid: 50, additionalGids: [50], home: '/home/app' }],
  ['1000:1000', { uid: 1000, gid: 1000, additionalGids: [1000], home: '/home/app' }],
  // A uid passwd does not know runs with gid 0.
  ['4242', { uid: 4242, gid: 0, additionalGids: [0], home: '/' }],
])('USER %s', async (spec, expected) => {
  expect(await resolveExecUser(rootfs, spec)).toEqual(expected);
});
