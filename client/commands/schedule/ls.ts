// `strata schedule ls`: strata's schedules on the server.
import { printTable } from '../../format.js';
import { withSession } from '../../session.js';
import { WORKFLOW_TYPE, type ScheduleMemo } from './common.js';

export function runScheduleLs(): Promise<void> {
  return withSession(async ({ client }) => {
    const rows = [['ID', 'STATE', 'SCHEDULE', 'WHEN', 'NEXT RUN', 'SOURCE']];
    for await (const s of client.schedule.list()) {
      if (s.action?.workflowType !== WORKFLOW_TYPE) continue;
      const memo = (s.memo ?? {}) as Partial<ScheduleMemo>;
      const next = s.info.nextActionTimes[0];
      rows.push([s.scheduleId, s.state.paused ? 'paused' : 'active', memo.spec ?? '?', memo.when ?? '?', s.state.paused || !next ? '-' : next.toISOString(), memo.source ?? '?']);
    }
    printTable(rows);
  });
}
