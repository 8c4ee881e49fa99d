// `strata schedule pause ID [--note TEXT]`: no runs until unpaused.
import { withSession } from '../../session.js';

export function runSchedulePause(id: string, opts: { note?: string }): Promise<void> {
  return withSession(async ({ client }) => {
    await client.schedule.getHandle(id).pause(opts.note ?? 'paused by strata schedule pause');
    console.log(`Paused schedule ${id}`);
  });
}
