// Every activity's body runs guarded: user errors (EngineError.userError) become non-retryable
// failures, and a long activity heartbeats while it runs.
import { ApplicationFailure } from '@temporalio/activity';
import { EngineError } from '../engine/errors.js';
import { startHeartbeat, type HeartbeatOptions } from './heartbeat.js';

export async function guarded<T>(fn: () => Promise<T>, opts: { heartbeat?: boolean | HeartbeatOptions } = {}): Promise<T> {
  const stop = opts.heartbeat ? startHeartbeat(opts.heartbeat === true ? {} : opts.heartbeat) : undefined;
  try {
    return await fn();
  } catch (err) {
    if (err instanceof EngineError && err.userError) {
      throw ApplicationFailure.create({ message: err.message, type: err.code, nonRetryable: true });
    }
    throw err;
  } finally {
    stop?.();
  }
}
