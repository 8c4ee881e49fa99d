// `strata attach BUILD`: follows a build as `strata build` does after starting it.
import { UsageError } from '../errors.js';
import { followBuild } from '../follow.js';
import { withSession } from '../session.js';

export function runAttach(id: string): Promise<number> {
  return withSession(async (s) => {
    await s.client.workflow
      .getHandle(id)
      .describe()
      .catch(() => {
        throw new UsageError(`attach: no build ${id} on ${s.target.address}`);
      });
    return followBuild(s, id);
  });
}
