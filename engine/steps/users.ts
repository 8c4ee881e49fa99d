// User and group names resolved against the image's own /etc/passwd and /etc/group.
import { promises as fs } from 'node:fs';
import { UserInputError } from '../errors.js';
import { resolveInRoot } from '../fsutil/scoped.js';

export interface Owner {
  uid: number;
  gid: number;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

async function readDb(rootfs: string, file: string): Promise<string[][]> {
  try {
    const host = await resolveInRoot(rootfs, file, { followFinal: true });
    const text = await fs.readFile(host, 'utf8');
    return text
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('#'))
      .map((l) => l.split(':'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export async function readPasswd(rootfs: string): Promise<PasswdEntry[]> {
  return (await readDb(rootfs, '/etc/passwd')).map((f) => ({ name: f[0] ?? '', uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? '/' }));
}

/**
 * `user[:group]` → numeric ids, as docker resolves --chown and USER: numbers are taken as
 * they are; names must exist in the image. Without a group, a named user brings its
 * primary group and a numeric uid is also the gid.
 */
export async function resolveOwner(rootfs: string, spec: string): Promise<Owner> {
  const [user = '', group] = spec.split(':', 2);
  let uid: number;
  let gid: number | undefined;
  if (/^\d+$/.test(user)) {
    uid = Number(user);
  } else {
    const entry = (await readPasswd(rootfs)).find((e) => e.name === user);
    if (!entry) throw new UserInputError('UNKNOWN_USER', `resolve user: unable to find user ${user}: no matching entries in passwd file`);
    uid = entry.uid;
    gid = entry.gid;
  }
  if (group !== undefined && group !== '') {
    if (/^\d+$/.test(group)) gid = Number(group);
    else {
      const g = (await readDb(rootfs, '/etc/group')).find((f) => f[0] === group);
      if (!g) throw new UserInputError('UNKNOWN_GROUP', `resolve group: unable to find group ${group}: no matching entries in group file`);
      gid = Number(g[2]);
    }
  }
  return { uid, gid: gid ?? uid };
}

export interface ExecUser extends Owner {
  additionalGids: number[];
  home: string;
}

/**
 * USER as a process runs it (docker's rules, which differ from --chown's): a named user
 * brings its primary group and its memberships in /etc/group; a uid missing from passwd
 * runs with gid 0; `user:group` sets the group and drops the memberships. The primary gid
 * is always among the supplementary groups too (the classic builder, and BuildKit since
 * moby/buildkit#3651), so `id` shows `groups=1000(app),…`.
 */
export async function resolveExecUser(rootfs: string, spec: string | undefined): Promise<ExecUser> {
  // No USER (or an empty user part) means uid 0, looked up by number, not by the name
  // "root": a root without /etc/passwd (FROM scratch and a static binary) runs as 0:0, as
  // docker's runtime does.
  const [named = '', group] = (spec ?? '').split(':', 2);
  const user = named === '' ? '0' : named;
  const passwd = await readPasswd(rootfs);
  const entry = /^\d+$/.test(user) ? passwd.find((e) => e.uid === Number(user)) : passwd.find((e) => e.name === user);
  if (!entry && !/^\d+$/.test(user)) {
    throw new UserInputError('UNKNOWN_USER', `resolve user: unable to find user ${user}: no matching entries in passwd file`);
  }
  const uid = entry ? entry.uid : Number(user);
  let gid = entry ? entry.gid : 0;
  const groups = await readDb(rootfs, '/etc/group');
  let additionalGids: number[] = [];
  if (group !== undefined && group !== '') {
    if (/^\d+$/.test(group)) gid = Number(group);
    else {
      const g = groups.find((f) => f[0] === group);
      if (!g) throw new UserInputError('UNKNOWN_GROUP', `resolve group: unable to find group ${group}: no matching entries in group file`);
      gid = Number(g[2]);
    }
  } else if (entry) {
    additionalGids = groups
      .filter((f) => (f[3] ?? '').split(',').includes(entry.name))
      .map((f) => Number(f[2]))
      .filter((g) => g !== gid);
  }
  // Both builders list the primary group among the supplementary ones too (`id` shows it in
  // groups=), which is what lets a process keep it across a setgid change.
  return { uid, gid, additionalGids: [gid, ...additionalGids], home: entry?.home || '/' };
}
