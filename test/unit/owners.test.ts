// Which processes count as alive for reclaiming a store's leftovers: on this machine by pid
// and start time, elsewhere by how recently the owner touched its record.
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PROCESS_TAG } from '../../engine/fsutil/atomic.js';
import { reclaimDeadOwners } from '../../engine/runtime/reclaim.js';
import { OWNER_STALE_MS, ownerAlive } from '../../engine/store/owners.js';
import { Store } from '../../engine/store/store.js';

let root: string;
let mine: Record<string, unknown>;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-owners-'));
  await Store.open(root);
  mine = JSON.parse(await fs.readFile(path.join(root, 'owners', `${PROCESS_TAG}.json`), 'utf8')) as Record<string, unknown>;
});

afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

async function writeOwner(tag: string, record: Record<string, unknown>, ageMs = 0): Promise<void> {
  const file = path.join(root, 'owners', `${tag}.json`);
  await fs.writeFile(file, JSON.stringify(record));
  const t = new Date(Date.now() - ageMs);
  await fs.utimes(file, t, t);
}

/** A process that has exited and been reaped: its pid names nobody (or somebody else). */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

test('Store.open records this process as an owner of the store', () => {
  expect(mine.pid).toBe(process.pid);
  expect(mine.startTime).toMatch(/^\d+$/);
});

test('on this machine an owner is alive while its pid names the same process', async () => {
  await writeOwner('aaaaaaaaaaa1', { ...mine });
  expect(await ownerAlive(root, 'aaaaaaaaaaa1')).toBe(true);
  // The pid reused by another process (another start time) is not the owner.
  await writeOwner('aaaaaaaaaaa2', { ...mine, startTime: '1' });
  expect(await ownerAlive(root, 'aaaaaaaaaaa2')).toBe(false);
  await writeOwner('aaaaaaaaaaa3', { ...mine, pid: await deadPid() });
  expect(await ownerAlive(root, 'aaaaaaaaaaa3')).toBe(false);
  // No record: nobody can be using the entries.
  expect(await ownerAlive(root, 'aaaaaaaaaaa4')).toBe(false);
});

test('an owner on another machine (or pid namespace) is alive while it touches its record', async () => {
  await writeOwner('bbbbbbbbbbb1', { ...mine, pidNamespace: 'pid:[1]', pid: 1 });
  expect(await ownerAlive(root, 'bbbbbbbbbbb1')).toBe(true);
  await writeOwner('bbbbbbbbbbb2', { ...mine, bootId: 'elsewhere', pid: 1 }, OWNER_STALE_MS + 60_000);
  expect(await ownerAlive(root, 'bbbbbbbbbbb2')).toBe(false);
});

test('reclaiming removes the dead owners’ temp entries and records, and keeps the live ones’', async () => {
  await writeOwner('ccccccccccc1', { ...mine, pid: await deadPid() });
  await writeOwner('ccccccccccc2', { ...mine });
  const dead = [path.join(root, 'tmp', 'run-ccccccccccc1-0123456789ab'), path.join(root, 'tmp', 'cache-mount-ccccccccccc1-0123456789ab')];
  for (const d of dead) await fs.mkdir(path.join(d, 'upper'), { recursive: true });
  const deadFiles = [path.join(root, 'blobs', 'sha256', '.tmp-ccccccccccc1-0123456789ab'), path.join(root, '.tmp-ccccccccccc1-0123456789ab')];
  const live = [path.join(root, 'tmp', 'run-ccccccccccc2-0123456789ab'), path.join(root, 'blobs', 'sha256', `.tmp-${PROCESS_TAG}-0123456789ab`)];
  for (const f of [...deadFiles, ...live]) await fs.writeFile(f, 'partial');

  const removed = await reclaimDeadOwners(root);
  expect(removed.sort()).toEqual([...dead, ...deadFiles].sort());
  for (const p of [...dead, ...deadFiles, path.join(root, 'owners', 'ccccccccccc1.json')]) await expect(fs.stat(p)).rejects.toMatchObject({ code: 'ENOENT' });
  for (const p of [...live, path.join(root, 'owners', 'ccccccccccc2.json'), path.join(root, 'owners', `${PROCESS_TAG}.json`)]) await expect(fs.stat(p)).resolves.toBeDefined();
});
