// WORKDIR's filesystem half: create the directory when the image lacks it.
import { promises as fs } from 'node:fs';
import type { Digest } from '../digest.js';
import { resolveInRoot } from '../fsutil/scoped.js';
import { commitStep, type StepResult } from '../layer/commit.js';
import type { WorkdirStep } from '../plan/types.js';
import { mountOverlay } from '../runtime/overlay.js';
import type { Store } from '../store/store.js';

/** mkdir -p (root-owned, 0755, as the classic builder) inside an overlay; no layer when it existed. */
export async function executeWorkdir(store: Store, spec: { parentTop?: Digest; step: WorkdirStep; sourceDateEpoch?: number }): Promise<StepResult> {
  const staging = await store.makeTempDir('workdir');
  try {
    const mount = await mountOverlay(store, await store.chainOf(spec.parentTop), staging);
    try {
      const host = await resolveInRoot(mount.merged, spec.step.path, { followFinal: true });
      const st = await fs.stat(host).catch(() => undefined);
      if (!st) await fs.mkdir(host, { recursive: true, mode: 0o755 });
    } finally {
      await mount.unmount();
    }
    return await commitStep(store, mount.upper, spec.parentTop, spec.step.history, spec.sourceDateEpoch);
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
}
