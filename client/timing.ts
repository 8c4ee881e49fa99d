// STRATA_TIMING=1: how long each phase of a command took, in ms, on stderr — the fixed cost of
// a build measured step by step — and, for a build, where the workflow's own time went, read
// from its history (each task's wait in the queue and its run).
import type { Client } from '@temporalio/client';

const enabled = process.env.STRATA_TIMING === '1';
/** performance.now() counts from the process's start, so the first phase includes node's boot and the imports. */
let last = 0;

export function timingEnabled(): boolean {
  return enabled;
}

/** Ends the phase `name`: prints its ms and the ms since the process started. */
export function phase(name: string): void {
  if (!enabled) return;
  const now = performance.now();
  process.stderr.write(`timing: ${name.padEnd(22)} ${ms(now - last)}  (at ${ms(now)})\n`);
  last = now;
}

function ms(n: number): string {
  return `${Math.round(n).toString().padStart(6)} ms`;
}

/** One row per workflow and activity task of the build: queued (scheduled → started) and run (started → completed). */
export async function printHistoryTimings(client: Client, workflowId: string): Promise<void> {
  if (enabled) process.stderr.write(await historyTimings(client, workflowId));
}

/** printHistoryTimings's text (the background worker reads it for a client that has no Temporal client). */
export async function historyTimings(client: Client, workflowId: string): Promise<string> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const at = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;
  const events = history.events ?? [];
  const t0 = at(events[0]?.eventTime);
  const scheduled = new Map<string, { name: string; time: number }>();
  const started = new Map<string, number>();
  const rows: string[] = [];
  for (const e of events) {
    const id = String(e.eventId);
    const time = at(e.eventTime);
    if (e.workflowTaskScheduledEventAttributes) scheduled.set(id, { name: 'workflow task', time });
    const act = e.activityTaskScheduledEventAttributes;
    if (act) scheduled.set(id, { name: act.activityType?.name ?? 'activity', time });
    const s = e.workflowTaskStartedEventAttributes ?? e.activityTaskStartedEventAttributes;
    if (s) started.set(String(s.scheduledEventId), time);
    const c = e.workflowTaskCompletedEventAttributes ?? e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes;
    if (c) {
      const key = String(c.scheduledEventId);
      const sch = scheduled.get(key);
      const st = started.get(key);
      if (sch && st !== undefined) rows.push(`timing:   ${sch.name.padEnd(16)} at ${ms(sch.time - t0)}  queued ${ms(st - sch.time)}  ran ${ms(time - st)}`);
    }
  }
  const end = at(events[events.length - 1]?.eventTime);
  return `timing: workflow ${workflowId}: ${ms(end - t0)} from start to close, ${events.length} events\n${rows.join('\n')}\n`;
}
