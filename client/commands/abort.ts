// `strata abort BUILD`: a build that waits for a retry fails with its step's error.
import { WorkflowFailedError } from '@temporalio/client';
import { removeBuildSecrets } from '../../engine/store/secrets.js';
import { UsageError } from '../errors.js';
import { progressOf } from '../follow.js';
import { withSession } from '../session.js';

export function runAbort(id: string): Promise<number> {
  return withSession(async (s) => {
    const p = await progressOf(s, id);
    if (p.phase !== 'waiting')
      throw new UsageError(`abort: build ${id} is not waiting for a retry (it is ${p.phase}); use Ctrl-C in its client or the Web UI to cancel a running build`);
    const handle = s.client.workflow.getHandle(id);
    await handle.signal('abort');
    try {
      await handle.result();
    } catch (e) {
      console.error(`Build ${id} aborted: ${e instanceof WorkflowFailedError ? (e.cause?.message ?? e.message) : (e as Error).message}`);
      await removeBuildSecrets(s.store.root, id);
      return 0;
    }
    throw new UsageError(`abort: build ${id} finished before the abort arrived`);
  });
}
