// The background worker's build socket ($STRATA_HOME/run/worker-<tag>.sock, mode 0600): how a
// `strata build` on this machine hands its build to the worker, which starts and follows it
// with its open Temporal connection, so the command loads no Temporal code. One request per
// connection, one JSON line each way; both ends bound what they read.
import type net from 'node:net';
import path from 'node:path';

/** A request line: a build request with its Web UI text is far below this. */
export const MAX_REQUEST_BYTES = 1 << 20;
/** An answer line: a build's progress or its history's timings. */
export const MAX_ANSWER_BYTES = 64 << 20;
/** How long the worker waits for a connection's request line. */
export const REQUEST_TIMEOUT_MS = 10_000;
/** The builds `strata build` names (client/commands/build.ts): the only workflows the socket touches. */
export const BUILD_ID = /^build-[0-9a-f]{12}$/;

export type SocketOp = 'start' | 'progress' | 'beats' | 'result' | 'cancel' | 'timings';
export const SOCKET_OPS: readonly SocketOp[] = ['start', 'progress', 'beats', 'result', 'cancel', 'timings'];

export function socketDir(root: string): string {
  return path.join(root, 'run');
}

export function socketPath(root: string, tag: string): string {
  return path.join(socketDir(root), `worker-${tag}.sock`);
}

/**
 * The socket's first line, at most `max` bytes without its newline; rejects when the stream
 * ends before it, or it is longer. What follows the line is ignored.
 */
export function readLine(sock: net.Socket, max: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err?: Error, line?: string) => {
      sock.off('data', onData);
      sock.off('end', onEnd);
      sock.off('close', onEnd);
      sock.off('error', onError);
      if (err) reject(err);
      else resolve(line!);
    };
    const onData = (chunk: Buffer) => {
      const nl = chunk.indexOf(0x0a);
      const take = nl < 0 ? chunk : chunk.subarray(0, nl);
      size += take.length;
      if (size > max) return done(new LineTooLong(`more than ${max} bytes before the end of the line`));
      chunks.push(take);
      if (nl >= 0) done(undefined, Buffer.concat(chunks).toString('utf8'));
    };
    const onEnd = () => done(new LineCut('the connection ended before the end of the line'));
    const onError = (err: Error) => done(new LineCut(err.message));
    sock.on('data', onData);
    sock.once('end', onEnd);
    sock.once('close', onEnd);
    sock.once('error', onError);
  });
}

export class LineTooLong extends Error {}
export class LineCut extends Error {}
