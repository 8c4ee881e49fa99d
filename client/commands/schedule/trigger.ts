// `strata schedule trigger ID [--wait]`: a run now, and with --wait its result.
import type { ScheduleDescription } from '@temporalio/client';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import type { ScheduledBuildResult } from '../../../workflows/scheduleTypes.js';
import { UsageError } from '../../errors.js';
import { withSession } from '../../session.js';
import { WORKFLOW_TYPE, failureMessage, formatResult } from './common.js';

/** How long `trigger --wait` waits for the schedule to start the run. */
const START_WAIT_MS = 60_000;

export function runScheduleTrigger(id: string, opts: { wait?: boolean }): Promise<void> {
  const wait = opts.wait ?? false;
  return withSession(async (s) => {
    const { client } = s;
    const handle = client.schedule.getHandle(id);
    const before = await handle.describe();
    if (before.action.workflowType !== WORKFLOW_TYPE) throw new UsageError(`schedule trigger: ${id} is not a strata schedule`);
    const busy = before.info.runningActions[0];
    if (busy) throw new UsageError(`schedule trigger: run ${busy.workflow.workflowId} of ${id} is still going; the overlap policy (skip) would drop this one`);
    const queue = before.action.taskQueue;
    const live = await s.hasLiveWorker(queue);
    if (wait && !live) throw new UsageError(`schedule trigger: no worker polls task queue "${queue}" to run it; start \`strata worker\``);
    await handle.trigger(ScheduleOverlapPolicy.SKIP);
    if (!wait) {
      console.log(`Triggered schedule ${id}`);
      if (!live) console.error(`warning: no worker polls task queue "${queue}": the run waits until \`strata worker\` runs`);
      return;
    }
    const runsOf = (d: ScheduleDescription) => [...d.info.runningActions.map((a) => a.workflow), ...d.info.recentActions.map((a) => a.action.workflow)];
    const seen = new Set(runsOf(before).map((w) => w.firstExecutionRunId));
    const deadline = Date.now() + START_WAIT_MS;
    let run: { workflowId: string; firstExecutionRunId: string } | undefined;
    while (!run) {
      if (Date.now() > deadline) throw new UsageError(`schedule trigger: ${id} started no run within ${START_WAIT_MS / 1000}s`);
      await new Promise((r) => setTimeout(r, 200));
      run = runsOf(await handle.describe()).find((w) => !seen.has(w.firstExecutionRunId));
    }
    console.log(`Run ${run.workflowId}`);
    try {
      console.log(formatResult((await client.workflow.getHandle(run.workflowId, run.firstExecutionRunId).result()) as ScheduledBuildResult));
    } catch (err) {
      throw new UsageError(`run ${run.workflowId} failed: ${failureMessage(err)}`);
    }
  });
}
