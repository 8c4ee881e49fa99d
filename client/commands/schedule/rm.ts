// `strata schedule rm ID`: deletes the schedule and its last build's record (images stay).
import { removeScheduleState } from '../../../engine/store/schedules.js';
import { withSession } from '../../session.js';

export function runScheduleRm(id: string): Promise<void> {
  return withSession(async ({ client, store }) => {
    await client.schedule.getHandle(id).delete();
    await removeScheduleState(store.root, id);
    console.log(`Removed schedule ${id}`);
  });
}
