// How the CLI fails: usage errors and exit statuses, and the one place that prints an error.
import type { ScheduleNotFoundError } from '@temporalio/client';
import { EngineError, RegistryError } from '../engine/errors.js';

/** A mistake in how strata was called: printed as `error: …` without a stack, exit 1. */
export class UsageError extends Error {}

/** Exit status of a client that leaves a build waiting for `strata retry` or `strata abort`. */
export const EXIT_WAITING = 2;

/**
 * Exit status of a command line strata cannot parse (unknown flag, missing argument): docker's
 * for its own usage errors, apart from 1 (the command failed) and 2 (a build waits).
 */
export const EXIT_USAGE = 125;

/**
 * Prints an error that ended a command and returns the exit status. The user's mistakes and
 * failing registries (not bugs of ours: the message says it all) print without a stack.
 */
export function reportError(err: unknown): number {
  // By name: importing Temporal's client here would load it for every command.
  if (err instanceof Error && err.name === 'ScheduleNotFoundError') err = new UsageError(`schedule: no schedule ${(err as ScheduleNotFoundError).scheduleId}`);
  if (err instanceof UsageError || err instanceof RegistryError || (err instanceof EngineError && err.userError)) {
    console.error(`error: ${err.message}`);
    return 1;
  }
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  return 1;
}
