// One layer's tar (a stored blob, or regenerated from its snapshot) hashed (diff_id),
// compressed, hashed again (the blob digest) and written to a spool file. Run in a worker
// thread for a layer of some size (compressWorker.ts), inline for a small one (compressJob.ts).
import { createReadStream, promises as fs } from 'node:fs';
import { PassThrough, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestStream } from '../digest.js';
import { writeLayerTar } from '../layer/tar.js';
import { compressor } from './compress.js';
import type { CompressedResult, CompressJob } from './compressJob.js';

/** Tell the uploader at most this often (in bytes) how far the spool got. */
const REPORT_EVERY = 1 << 20;

function source(job: CompressJob): Readable {
  if (job.source.kind === 'blob') return createReadStream(job.source.path, { highWaterMark: 1 << 20 });
  const through = new PassThrough({ highWaterMark: 1 << 20 });
  writeLayerTar(job.source.dir, through, { sourceDateEpoch: job.source.sourceDateEpoch }).catch((err: Error) => through.destroy(err));
  return through;
}

/** Compresses `job` into its spool file (fsynced), calling `onWritten` as the file grows. */
export async function compressToSpool(job: CompressJob, onWritten: (written: number) => void, signal?: AbortSignal): Promise<CompressedResult> {
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
            onWritten(written);
          }
        })().then(() => cb(), cb);
      },
    });
    await pipeline(source(job), diff, compressor(job.compression), blob, sink, ...(signal ? [{ signal }] : []));
    await fh.sync();
    onWritten(written);
    return { diffId: diff.digest(), size: diff.size, digest: blob.digest(), compressedSize: blob.size };
  } finally {
    await fh.close();
  }
}
