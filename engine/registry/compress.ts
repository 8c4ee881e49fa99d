// Layer compression for pushes: a parallel gzip that stores what does not compress, and
// zstd through Debian's `zstd` (node 20's zlib has no zstd).
//
// The gzip stream is one member whose deflate data is cut into 1 MiB segments, each ending
// byte-aligned (sync flush) and deflated on its own with the previous segment's last 32 KiB
// as dictionary (pigz's way): so segments compress on all the threadpool's threads at once
// and the ratio is a plain gzip's. A segment whose first 16 KiB deflate (level 1) to more than
// STORE_ABOVE of its size goes as stored blocks: zlib deflates incompressible bytes (media,
// compressed files, random data) at ~30 MB/s a core here whatever the level, and gains
// nothing on them; storing costs a copy. Every decision hangs on the input bytes only, so
// the same layer gives the same blob. (zlib's deflateParams cannot do this: node's
// `params()` leaves the level as it was.)
import { spawn } from 'node:child_process';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import { EngineError } from '../errors.js';

export type PushCompression = 'gzip' | 'zstd';

/** docker's and skopeo's default deflate level. */
export const GZIP_LEVEL = 6;
const SEGMENT = 1 << 20;
const SAMPLE = 16 << 10;
const DICTIONARY = 32 << 10;
const STORE_ABOVE = 0.97;
/** Segments in flight: node's threadpool has 4 threads. */
const IN_FLIGHT = 4;
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]); // no name, no time, OS unknown
/** A final empty stored block ends the deflate data. */
const FINAL_BLOCK = Buffer.from([0x01, 0x00, 0x00, 0xff, 0xff]);

/** A compressing stream for `compression`; the caller pipes the layer tar through it. */
export function compressor(compression: PushCompression): Transform {
  return compression === 'gzip' ? new ParallelGzip() : zstdCompressor();
}

export class ParallelGzip extends Transform {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private previousTail?: Buffer;
  private crc = 0;
  private size = 0;
  private readonly jobs: Promise<Buffer>[] = [];

  constructor(private readonly level = GZIP_LEVEL) {
    super();
    this.push(GZIP_HEADER);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.crc = zlib.crc32(chunk, this.crc);
    this.size += chunk.length;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.drain(false).then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    this.drain(true).then(() => {
      const trailer = Buffer.alloc(8);
      trailer.writeUInt32LE(this.crc >>> 0, 0);
      trailer.writeUInt32LE(this.size % 2 ** 32, 4);
      this.push(Buffer.concat([FINAL_BLOCK, trailer]));
      cb();
    }, cb);
  }

  /** Starts a job per full segment (the last, partial one at the end), keeping IN_FLIGHT at most. */
  private async drain(end: boolean): Promise<void> {
    while (this.pendingBytes >= SEGMENT || (end && this.pendingBytes > 0)) {
      const all = Buffer.concat(this.pending);
      const segment = all.subarray(0, SEGMENT);
      const rest = all.subarray(segment.length);
      this.pending = rest.length ? [rest] : [];
      this.pendingBytes = rest.length;
      this.jobs.push(deflateSegment(segment, this.previousTail, this.level));
      this.previousTail = Buffer.from(segment.subarray(Math.max(0, segment.length - DICTIONARY)));
      while (this.jobs.length >= IN_FLIGHT) this.push(await this.jobs.shift()!);
    }
    if (end) while (this.jobs.length > 0) this.push(await this.jobs.shift()!);
  }
}

/** One segment as non-final deflate blocks ending byte-aligned: deflated, or stored when that gains nothing. */
async function deflateSegment(segment: Buffer, dictionary: Buffer | undefined, level: number): Promise<Buffer> {
  const opts = (lvl: number): zlib.ZlibOptions => ({ level: lvl, finishFlush: zlib.constants.Z_SYNC_FLUSH, ...(dictionary ? { dictionary } : {}) });
  const sample = segment.subarray(0, SAMPLE);
  const probe = await deflate(sample, opts(1));
  if (probe.length > sample.length * STORE_ABOVE) return storedBlocks(segment);
  return deflate(segment, opts(level));
}

function deflate(data: Buffer, opts: zlib.ZlibOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => zlib.deflateRaw(data, opts, (err, out) => (err ? reject(err) : resolve(out))));
}

/** Deflate's stored blocks (BTYPE 00, not final), at most 65535 bytes each. */
function storedBlocks(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let off = 0; off < data.length; off += 0xffff) {
    const piece = data.subarray(off, off + 0xffff);
    const head = Buffer.alloc(5);
    head.writeUInt16LE(piece.length, 1);
    head.writeUInt16LE(~piece.length & 0xffff, 3);
    parts.push(head, piece);
  }
  return Buffer.concat(parts);
}

/** `zstd -3` on all cores, as a stream; a failure of the program fails the stream. */
function zstdCompressor(): Transform {
  const child = spawn('zstd', ['-q', '-c', '-3', '-T0'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()).length > 4096 && (stderr = stderr.slice(-4096)));
  const output: Readable = child.stdout;
  const duplex = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (!child.stdin.write(chunk)) child.stdin.once('drain', () => cb());
      else cb();
    },
    flush(cb) {
      child.once('close', (code) => (code === 0 ? cb() : cb(new EngineError('COMPRESS_FAILED', `compress layer: zstd failed: ${stderr.trim() || `exit ${code}`}`))));
      child.stdin.end();
    },
    destroy(err, cb) {
      if (child.exitCode === null) child.kill();
      cb(err);
    },
  });
  child.on('error', (e) => duplex.destroy(new EngineError('COMPRESS_FAILED', `compress layer: cannot run zstd: ${e.message}`)));
  child.stdin.on('error', () => undefined); // the exit status reports it
  // The output goes to a spool file on the same disk: no need to hold zstd back.
  output.on('data', (c: Buffer) => duplex.push(c));
  return duplex;
}
