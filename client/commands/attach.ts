// `strata attach BUILD`: follows a build as `strata build` does after starting it.
import { UsageError } from '../errors.js';
import { followBuild } from '../temporalLink.js';
import { withSession } from '../session.js';
import { openView, progressMode } from '../view.js';

export function runAttach(id: string, opts: { progress?: string } = {}): Promise<number> {
  const view = openView(progressMode(opts.progress, false));
  return withSession(async (s) => {
    await s.client.workflow
      .getHandle(id)
      .describe()
      .catch(() => {
        throw new UsageError(`attach: no build ${id} on ${s.target.address}`);
      });
    return followBuild(s, id, undefined, view);
  });
}
