// The worker's input checks cover every activity it registers: a new activity without a
// check would run on whatever anyone who reaches Temporal sends it.
import { createActivities } from '../../activities/index.js';
import { createPullActivities } from '../../activities/pull.js';
import { createPushActivities } from '../../activities/push.js';
import { createScheduleActivities } from '../../activities/schedule.js';
import { CHECKS } from '../../activities/validate.js';
import type { Store } from '../../engine/store/store.js';

test('every activity the worker registers has an input check', () => {
  const deps = { store: { root: '/nowhere' } as Store };
  const names = Object.keys({ ...createActivities(deps), ...createScheduleActivities(deps), ...createPushActivities(deps), ...createPullActivities(deps) }).sort();
  expect(names.filter((n) => !(n in CHECKS))).toEqual([]);
  expect(Object.keys(CHECKS).sort()).toEqual(names);
});

test.each(['..', '.', 'a/b', '', '../x'])('build ID %j names no directory (logs, secrets)', async (id) => {
  const { buildLogDir } = await import('../../engine/store/logs.js');
  const { buildSecretsDir } = await import('../../engine/store/secrets.js');
  expect(() => buildLogDir('/r', id)).toThrow('invalid build ID');
  expect(() => buildSecretsDir('/r', id)).toThrow('invalid build ID');
});

test('lookupCache refuses a look-up that names what this store lacks or is not a key', async () => {
  const os = await import('node:os');
  const path = await import('node:path');
  const { promises: fs } = await import('node:fs');
  const { Store } = await import('../../engine/store/store.js');
  const store = await Store.open(await fs.mkdtemp(path.join(os.tmpdir(), 'strata-validate-')));
  const context = (await store.putBlob(Buffer.from('no tar'))).digest;
  const zero = `sha256:${'0'.repeat(64)}`;
  const check = (input: unknown) => CHECKS.lookupCache!(input, { store });
  const ok = { start: { kind: 'key', key: zero }, steps: [], contextDigest: context, useCache: true };
  await expect(check(ok)).resolves.toBeUndefined();
  await expect(check({ ...ok, start: { kind: 'key', key: 'sha256:zz' } })).rejects.toThrow('start.key');
  await expect(check({ ...ok, start: { kind: 'other' } })).rejects.toThrow('start.kind');
  await expect(check({ ...ok, parentTop: zero })).rejects.toThrow('parentTop');
  await expect(check({ ...ok, contextDigest: zero })).rejects.toThrow('contextDigest');
  await expect(check({ ...ok, steps: [{ kind: 'run', number: 1, line: 1, text: 'RUN x', history: { created_by: 'x' }, args: [], env: [], workdir: '/' }] })).rejects.toThrow(
    'steps[0].args',
  );
  await expect(check({ ...ok, cacheFrom: ['127.0.0.1:5000/cache'] })).resolves.toBeUndefined();
  await expect(check({ ...ok, cacheFrom: ['127.0.0.1:5000/cache:tag'] })).rejects.toThrow('cacheFrom[0]');
  await expect(check({ ...ok, cacheFrom: ['no-registry'] })).rejects.toThrow('cacheFrom[0]');
  await expect(check({ ...ok, cacheFrom: Array.from({ length: 9 }, (_, i) => `r.example/c${i}`) })).rejects.toThrow('cacheFrom');
  await fs.rm(store.root, { recursive: true, force: true });
});
