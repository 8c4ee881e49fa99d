// The one heartbeat timer of long activities: a beat now, then one every interval, each with
// the details the activity wants clients to see (RUN output, push progress), until stopped.
import { Context } from '@temporalio/activity';

/** How often a long activity tells Temporal it is alive. */
export const HEARTBEAT_MS = 10_000;

export interface HeartbeatOptions {
  /** Milliseconds between beats (default HEARTBEAT_MS). */
  everyMs?: number;
  /** What each beat carries; called at each beat. */
  details?: () => unknown;
}

/** Starts heartbeating the current activity; call the returned function to stop (in `finally`). */
export function startHeartbeat(opts: HeartbeatOptions = {}): () => void {
  const ctx = Context.current();
  const beat = () => ctx.heartbeat(opts.details?.());
  beat();
  const timer = setInterval(beat, opts.everyMs ?? HEARTBEAT_MS);
  return () => clearInterval(timer);
}
