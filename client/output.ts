// A running RUN step's output, streamed to the terminal: it arrives in the pending activity's
// heartbeat details, which any client can read through Temporal, wherever the worker runs.
import { readFileSync } from 'node:fs';
import type { Client } from '@temporalio/client';
import { stepLogPath } from '../engine/store/logs.js';
import type { RunHeartbeat } from '../workflows/types.js';
import { RUN_HEARTBEAT_MS } from '../workflows/types.js';

export class OutputStreamer {
  private printed = new Map<number, number>();
  constructor(
    private readonly client: Client,
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
    const desc = await this.client.workflowService
      .describeWorkflowExecution({ namespace: this.client.options.namespace, execution: { workflowId: this.workflowId } })
      .catch(() => undefined);
    const converter = this.client.options.loadedDataConverter.payloadConverter;
    for (const a of desc?.pendingActivities ?? []) {
      // Only RUN heartbeats carry output; other steps heartbeat with no details.
      if (a.activityType?.name !== 'runStep') continue;
      const payload = a.heartbeatDetails?.payloads?.[0];
      if (!payload) continue;
      let beat: RunHeartbeat | undefined;
      try {
        beat = converter.fromPayload<RunHeartbeat>(payload);
      } catch {
        continue; // streaming is a convenience: it never fails the build's client
      }
      if (!beat || typeof beat.text !== 'string' || typeof beat.offset !== 'number' || beat.step !== step) continue;
      const done = this.printed.get(step) ?? 0;
      const end = beat.offset + Buffer.byteLength(beat.text);
      if (end <= done) continue;
      if (beat.offset > done) this.write(`[… ${beat.offset - done} bytes of output skipped; see strata logs]\n`);
      const text =
        beat.offset >= done
          ? beat.text
          : Buffer.from(beat.text)
              .subarray(done - beat.offset)
              .toString('utf8');
      this.write(text);
      this.printed.set(step, end);
    }
  }
}
