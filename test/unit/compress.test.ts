// The push's parallel gzip: a valid single-member gzip whatever the input (gunzip gives the
// input back), the same bytes for the same input however it is chunked, incompressible
// segments stored, compressible ones deflated.
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gunzipSync } from 'node:zlib';
import { ParallelGzip } from '../../engine/registry/compress.js';

async function gzip(input: Buffer, chunk: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunk) parts.push(input.subarray(i, i + chunk));
  const out: Buffer[] = [];
  await pipeline(Readable.from(parts), new ParallelGzip(), new Writable({ write: (c: Buffer, _e, cb) => (out.push(c), cb()) }));
  return Buffer.concat(out);
}

const text = Buffer.from(Array.from({ length: 120_000 }, (_, i) => `row ${i % 977}: some words that repeat\n`).join(''));
const noise = randomBytes(3 << 20);
const cases: [string, Buffer][] = [
  ['empty', Buffer.alloc(0)],
  ['one byte', Buffer.from('x')],
  ['text (several segments)', text],
  ['random (several segments)', noise],
  ['random then text then random', Buffer.concat([noise.subarray(0, 1 << 20), text, noise.subarray(1 << 20)])],
];

test.each(cases)('%s: gunzip gives it back, and chunking does not change the bytes', async (_name, input) => {
  const a = await gzip(input, 65536);
  const b = await gzip(input, 1000);
  expect(gunzipSync(a).equals(input)).toBe(true);
  expect(b.equals(a)).toBe(true);
  // One gzip member: a second header would follow the first trailer.
  expect(a.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
});

test('random bytes are stored (a few bytes of framing per 64 KiB), text is deflated', async () => {
  const stored = await gzip(noise, 65536);
  expect(stored.length).toBeGreaterThan(noise.length);
  expect(stored.length).toBeLessThan(noise.length * 1.001);
  expect((await gzip(text, 65536)).length).toBeLessThan(text.length / 10);
});
