// Spool: a file being written (a layer compressing) that an upload reads behind the writer,
// and can read again from any offset when the registry asks to resume there.
import { promises as fs } from 'node:fs';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestStream, type Digest } from '../digest.js';

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

  /** Writes `src` to the file (created; must not exist), hashing it. Rejects, and fails waiters, on error. */
  async fill(src: Readable, signal?: AbortSignal): Promise<{ digest: Digest; size: number }> {
    const fh = await fs.open(this.path, 'wx', 0o644);
    const hasher = new DigestStream();
    try {
      const sink = new Writable({
        highWaterMark: 1 << 20,
        write: (chunk: Buffer, _enc, cb) => {
          writeAll(fh, chunk).then(() => {
            this.written += chunk.length;
            this.wake();
            cb();
          }, cb);
        },
      });
      await pipeline(src, hasher, sink, { signal });
      this.digest = hasher.digest();
      return { digest: this.digest, size: this.written };
    } catch (err) {
      this.fail(err as Error);
      throw err;
    } finally {
      await fh.close();
    }
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

async function writeAll(fh: fs.FileHandle, chunk: Buffer): Promise<void> {
  let off = 0;
  while (off < chunk.length) off += (await fh.write(chunk, off)).bytesWritten;
}
