// `strata schedule describe ID`: spec, source, state and each recent run's result.
import type { ScheduleDescription } from '@temporalio/client';
import type { ScheduledBuildRequest } from '../../../workflows/scheduleTypes.js';
import { UsageError } from '../../errors.js';
import { withSession } from '../../session.js';
import { WORKFLOW_TYPE, runOutcome, type ScheduleMemo } from './common.js';

export function runScheduleDescribe(id: string): Promise<void> {
  return withSession(async ({ client }) => {
    const d = await client.schedule.getHandle(id).describe();
    if (d.action.workflowType !== WORKFLOW_TYPE) throw new UsageError(`schedule describe: ${id} is not a strata schedule (it starts ${d.action.workflowType})`);
    const memo = d.memo as Partial<ScheduleMemo> | undefined;
    const req = d.action.args?.[0] as ScheduledBuildRequest;
    const field = (name: string, value: string) => console.log(`${(name + ':').padEnd(13)}${value}`);
    field('Schedule', id);
    field('Spec', memo?.spec ?? describeSpec(d));
    field('Source', memo?.source ?? req.source.kind);
    if (req.source.kind !== 'snapshot' && req.source.dockerfile) field('Dockerfile', req.source.dockerfile);
    field('Tags', req.build.tags.join(', ') || '(none)');
    if (Object.keys(req.build.buildArgs).length)
      field(
        'Build args',
        Object.entries(req.build.buildArgs)
          .map(([k, v]) => `${k}=${v}`)
          .join(' '),
      );
    if (req.build.target) field('Target', req.build.target);
    field('When', req.when);
    field('State', d.state.paused ? `paused${d.state.note ? ` (${d.state.note})` : ''}` : 'active');
    if (!d.state.paused && d.info.nextActionTimes[0]) field('Next run', d.info.nextActionTimes[0].toISOString());
    field('Runs', `${d.info.numActionsTaken} started, ${d.info.numActionsSkippedOverlap} skipped while one ran`);
    const running = new Set(d.info.runningActions.map((a) => a.workflow.firstExecutionRunId));
    const recent = [...d.info.recentActions].reverse();
    if (recent.length === 0) return;
    console.log('Recent runs (newest first):');
    for (const a of recent) {
      const { workflowId, firstExecutionRunId } = a.action.workflow;
      const outcome = running.has(firstExecutionRunId) ? 'running' : await runOutcome(client, workflowId, firstExecutionRunId);
      console.log(`  ${a.takenAt.toISOString()}  ${workflowId}  ${outcome}`);
    }
  });
}

function describeSpec(d: ScheduleDescription): string {
  const every = d.spec.intervals?.[0]?.every;
  if (every !== undefined) return `every ${every}ms`;
  return JSON.stringify(d.spec);
}
