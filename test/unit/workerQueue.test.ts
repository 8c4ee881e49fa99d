// A worker's step activities tell the workflow which queue is that worker's own (sticky
// routing, workflows/sticky.ts); the other activities' results are left as they are.
import { createActivities } from '../../activities/index.js';
import type { Store } from '../../engine/store/store.js';
import { ownQueue, ROUTED_ACTIVITIES, withWorkerQueue } from '../../worker/workerQueue.js';

test('step activities name the worker’s own queue in their result; others, errors and non-objects pass unchanged', async () => {
  const activities = withWorkerQueue(
    {
      runStep: async () => ({ history: { created_by: 'RUN x' } }),
      lookupCache: async () => ({ steps: [] }),
      copyStep: async () => {
        throw new Error('copy step: no such file');
      },
      workdirStep: async () => undefined,
      commitImage: async () => ({ imageId: 'sha256:1' }),
    },
    'strata-0123456789ab',
  );
  await expect(activities.runStep()).resolves.toEqual({ history: { created_by: 'RUN x' }, workerQueue: 'strata-0123456789ab' });
  await expect(activities.lookupCache()).resolves.toEqual({ steps: [], workerQueue: 'strata-0123456789ab' });
  await expect(activities.copyStep()).rejects.toThrow('copy step: no such file');
  await expect(activities.workdirStep()).resolves.toBeUndefined();
  await expect(activities.commitImage()).resolves.toEqual({ imageId: 'sha256:1' });
});

test('every routed activity is one the worker registers, and each worker process gets a queue of its own', () => {
  const names = Object.keys(createActivities({ store: { root: '/nowhere' } as Store }));
  expect(ROUTED_ACTIVITIES.filter((n) => !names.includes(n))).toEqual([]);
  const a = ownQueue('strata');
  expect(a).toMatch(/^strata-[0-9a-f]{12}$/);
  expect(ownQueue('strata')).not.toBe(a);
});
