// Spool: a file being written (a layer compressing, in a worker thread) that an upload reads
// behind the writer, and can read again from any offset when the registry asks to resume there.
import type { Digest } from '../digest.js';

export class Spool {
  /** Bytes on disk so far, readable by others. */
  written = 0;
  /** Set by `finish` once the content is complete and checked. */
  done = false;
  digest?: Digest;
  private failure?: Error;
  private waiting: (() => void)[] = [];

  constructor(readonly path: string) {}

  /** A spool over a complete file (a stored blob). */
  static complete(path: string, size: number, digest: Digest): Spool {
    const s = new Spool(path);
    s.written = size;
    s.digest = digest;
    s.done = true;
    return s;
  }

  /** Another writer (a worker thread) got the file to `written` bytes. */
  advance(written: number): void {
    if (written <= this.written) return;
    this.written = written;
    this.wake();
  }

  /** The content is complete and checked: readers may take its end as the end. */
  finish(): void {
    this.done = true;
    this.wake();
  }

  fail(err: Error): void {
    this.failure ??= err;
    this.wake();
  }

  /** Resolves once `bytes` are written or the spool is done; rejects when it failed. */
  until(bytes: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.failure) reject(this.failure);
        else if (this.written >= bytes || this.done) resolve();
        else this.waiting.push(check);
      };
      check();
    });
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = [];
    for (const f of w) f();
  }
}
