// `strata schedule unpause ID`: a paused schedule runs again.
import { withSession } from '../../session.js';

export function runScheduleUnpause(id: string): Promise<void> {
  return withSession(async ({ client }) => {
    await client.schedule.getHandle(id).unpause('unpaused by strata schedule unpause');
    console.log(`Unpaused schedule ${id}`);
  });
}
