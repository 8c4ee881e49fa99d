// Compressed tars, recognised by content as docker does (gzip, bzip2, xz, zstd), never by name.
import { spawn } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { UserInputError } from '../errors.js';

export type Compression = 'none' | 'gzip' | 'bzip2' | 'xz' | 'zstd';

export function detectCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

/** Reads the first bytes of `src` without losing them: returns them and a stream of everything. */
export async function peek(src: Readable, n = 8): Promise<{ head: Buffer; stream: Readable }> {
  const chunks: Buffer[] = [];
  let have = 0;
  // destroyOnReturn false: leaving the loop early must not close the stream we hand on.
  for await (const chunk of src.iterator({ destroyOnReturn: false })) {
    chunks.push(chunk as Buffer);
    have += (chunk as Buffer).length;
    if (have >= n) break;
  }
  const head = Buffer.concat(chunks);
  const out = new PassThrough();
  out.write(head);
  src.on('error', (e) => out.destroy(e));
  src.pipe(out);
  return { head: head.subarray(0, n), stream: out };
}

/** A stream of the decompressed bytes of `src`, whatever its compression. */
export async function decompressed(src: Readable): Promise<{ compression: Compression; stream: Readable }> {
  const { head, stream } = await peek(src);
  const compression = detectCompression(head);
  switch (compression) {
    case 'none':
      return { compression, stream };
    case 'gzip': {
      const gunzip = createGunzip();
      stream.on('error', (e) => gunzip.destroy(e));
      return { compression, stream: stream.pipe(gunzip) };
    }
    default:
      return { compression, stream: throughProgram(stream, compression === 'bzip2' ? 'bzip2' : compression === 'xz' ? 'xz' : 'zstd') };
  }
}

/** Pipes through `PROGRAM -dc` (Debian's bzip2, xz-utils, zstd): node has no decoder for them. */
function throughProgram(src: Readable, program: string): Readable {
  const child = spawn(program, ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out = new PassThrough();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.on('error', (e) => out.destroy(new UserInputError('DECOMPRESS_FAILED', `decompress: cannot run ${program}: ${e.message}`)));
  let exited = false;
  child.on('close', (code, signal) => {
    exited = true;
    if (code !== 0 && !out.destroyed) out.destroy(new UserInputError('DECOMPRESS_FAILED', `decompress: ${program} failed: ${stderr.trim() || signal}`));
  });
  // A reader that stops early (a format sniff, a failed extraction) would leave the child
  // blocked on a full pipe: stop it.
  out.on('close', () => {
    if (!exited && !out.readableEnded) child.kill();
  });
  src.on('error', (e) => child.stdin.destroy(e));
  child.stdin.on('error', () => undefined); // the child's own exit status reports the failure
  src.pipe(child.stdin);
  child.stdout.pipe(out);
  return out;
}
