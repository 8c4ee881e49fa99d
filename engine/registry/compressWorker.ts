// Runs in a worker thread: one layer's tar (a stored blob, or regenerated from its snapshot)
// hashed (diff_id), compressed, hashed again (the blob digest) and written to a spool file.
// Hashing is synchronous in node: on the main thread it would hold up every upload (and the
// other layers); here each layer hashes on a core of its own. Messages: {written} as the
// spool grows, then {done, …} or {error, …}. See compressJob.ts.
import { createReadStream, promises as fs } from 'node:fs';
import { PassThrough, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parentPort, workerData } from 'node:worker_threads';
import { DigestStream } from '../digest.js';
import { writeLayerTar } from '../layer/tar.js';
import { compressor } from './compress.js';
import type { CompressJob } from './compressJob.js';

const job = workerData as CompressJob;
/** Tell the uploader at most this often (in bytes) how far the spool got. */
const REPORT_EVERY = 1 << 20;

function source(): Readable {
  if (job.source.kind === 'blob') return createReadStream(job.source.path, { highWaterMark: 1 << 20 });
  const through = new PassThrough({ highWaterMark: 1 << 20 });
  writeLayerTar(job.source.dir, through, { sourceDateEpoch: job.source.sourceDateEpoch }).catch((err: Error) => through.destroy(err));
  return through;
}

async function run(): Promise<void> {
  const fh = await fs.open(job.spoolPath, 'wx', 0o644);
  let written = 0;
  let reported = 0;
  try {
    const diff = new DigestStream();
    const blob = new DigestStream();
    const sink = new Writable({
      highWaterMark: 1 << 20,
      write(chunk: Buffer, _enc, cb) {
        void (async () => {
          let off = 0;
          while (off < chunk.length) off += (await fh.write(chunk, off)).bytesWritten;
          written += chunk.length;
          if (written - reported >= REPORT_EVERY) {
            reported = written;
            parentPort!.postMessage({ written });
          }
        })().then(() => cb(), cb);
      },
    });
    await pipeline(source(), diff, compressor(job.compression), blob, sink);
    await fh.sync();
    parentPort!.postMessage({ written });
    parentPort!.postMessage({ done: true, diffId: diff.digest(), size: diff.size, digest: blob.digest(), compressedSize: blob.size });
  } finally {
    await fh.close();
  }
}

run().catch((err: NodeJS.ErrnoException) => parentPort!.postMessage({ error: err.message, code: err.code }));
