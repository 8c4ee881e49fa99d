// What running activities report in their heartbeats, read through Temporal from any machine:
// a RUN step's newest output, a COPY's files and bytes so far, a push's upload. The plain view
// streams a step's output from it; the live view shows all of it.
import { readFileSync } from 'node:fs';
import type { Client } from '@temporalio/client';
import type { PushProgress } from '../engine/registry/push.js';
import { stepLogPath } from '../engine/store/logs.js';
import type { CopyHeartbeat, RunHeartbeat } from '../workflows/types.js';
import { RUN_HEARTBEAT_MS } from '../workflows/types.js';

/** One running activity's newest heartbeat, by kind. */
export type ActivityBeat = { kind: 'run'; beat: RunHeartbeat } | { kind: 'copy'; beat: CopyHeartbeat } | { kind: 'push'; beat: PushProgress };

/** The newest heartbeat of each running activity of the build that reports one. */
export async function activityBeats(client: Client, workflowId: string): Promise<ActivityBeat[]> {
  const desc = await client.workflowService.describeWorkflowExecution({ namespace: client.options.namespace, execution: { workflowId } }).catch(() => undefined);
  const converter = client.options.loadedDataConverter.payloadConverter;
  const out: ActivityBeat[] = [];
  for (const a of desc?.pendingActivities ?? []) {
    const payload = a.heartbeatDetails?.payloads?.[0];
    if (!payload) continue;
    let beat: unknown;
    try {
      beat = converter.fromPayload<unknown>(payload);
    } catch {
      continue; // progress is a convenience: it never fails the build's client
    }
    if (!beat || typeof beat !== 'object') continue;
    const b = beat as Record<string, unknown>;
    const type = a.activityType?.name;
    if (type === 'runStep' && typeof b.text === 'string' && typeof b.offset === 'number' && typeof b.step === 'number')
      out.push({ kind: 'run', beat: b as unknown as RunHeartbeat });
    else if (type === 'copyStep' && typeof b.step === 'number' && typeof b.bytes === 'number' && typeof b.files === 'number')
      out.push({ kind: 'copy', beat: b as unknown as CopyHeartbeat });
    else if (type === 'pushImage' && typeof b.digest === 'string' && typeof b.bytes === 'number' && typeof b.size === 'number')
      out.push({ kind: 'push', beat: b as unknown as PushProgress });
  }
  return out;
}

/** A RUN step's output printed once, in order: from heartbeats while it runs, from its log after. */
export class OutputStreamer {
  private printed = new Map<number, number>();
  constructor(
    private readonly beats: () => Promise<ActivityBeat[]>,
    private readonly workflowId: string,
    private readonly write: (text: string) => void,
  ) {}

  /** Prints what the step's log holds beyond what was streamed (same-machine stores only). */
  flushFromLog(storeRoot: string, step: number): void {
    let buf: Buffer;
    try {
      buf = readFileSync(stepLogPath(storeRoot, this.workflowId, step));
    } catch {
      return;
    }
    const done = this.printed.get(step) ?? 0;
    if (buf.length > done) {
      const text = buf.subarray(done).toString('utf8');
      this.write(text.endsWith('\n') ? text : text + '\n');
    }
    this.printed.set(step, buf.length);
  }

  /** When describe last ran: RUN heartbeats come once a second, so asking more often finds nothing new. */
  private lastPoll = 0;

  async poll(step: number): Promise<void> {
    if (Date.now() - this.lastPoll < RUN_HEARTBEAT_MS) return;
    this.lastPoll = Date.now();
    for (const a of await this.beats()) {
      if (a.kind === 'run' && a.beat.step === step) this.take(a.beat);
    }
  }

  private take(beat: RunHeartbeat): void {
    const done = this.printed.get(beat.step) ?? 0;
    const end = beat.offset + Buffer.byteLength(beat.text);
    if (end <= done) return;
    if (beat.offset > done) this.write(`[… ${beat.offset - done} bytes of output skipped; see strata logs]\n`);
    const text =
      beat.offset >= done
        ? beat.text
        : Buffer.from(beat.text)
            .subarray(done - beat.offset)
            .toString('utf8');
    this.write(text);
    this.printed.set(beat.step, end);
  }
}
