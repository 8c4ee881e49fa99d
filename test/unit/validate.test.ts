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
