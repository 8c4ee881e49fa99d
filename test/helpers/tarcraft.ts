// Hostile tar archives built block by block: extended headers (pax `x` and `g`, GNU `L`) of
// any size and record count, streamed so a test can make gigabytes without holding them.
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';

const BLOCK = 512;

/** One ustar header block of `typeflag` announcing `size` bytes of body. */
export function rawHeader(name: string, typeflag: string, size: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(name, 0);
  b.write('0000644\0', 100);
  b.write('0000000\0', 108);
  b.write('0000000\0', 116);
  b.write(size.toString(8).padStart(11, '0') + '\0', 124);
  b.write('00000000000\0', 136);
  b.write(typeflag, 156);
  b.write('ustar\x0000', 257, 'latin1');
  b.fill(' ', 148, 156);
  let sum = 0;
  for (const c of b) sum += c;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return b;
}

function padding(n: number): Buffer {
  return Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);
}

/** `count` pax records `PREFIXi=v`, each `"%d key=value\n"`. */
export function paxRecords(count: number, prefix: string, value = 'v'): Buffer {
  const parts: string[] = [];
  for (let i = 0; i < count; i++) {
    const rest = ` ${prefix}${i}=${value}\n`;
    let len = rest.length + 1;
    while (String(len).length + rest.length !== len) len++;
    parts.push(`${len}${rest}`);
  }
  return Buffer.from(parts.join(''));
}

export interface BombSpec {
  /** Extended headers before the entry: typeflag and body. */
  /** `announce`: the size the header claims, when it is not the body's. */
  headers: { typeflag: 'x' | 'g' | 'L' | 'K'; body: Buffer; announce?: number }[];
  /** How many times the headers (each followed by an empty file) repeat. */
  repeat: number;
}

/** The archive as a stream of blocks, gzip-compressed. */
export function gzipBomb(spec: BombSpec): Readable {
  function* blocks(): Generator<Buffer> {
    for (let r = 0; r < spec.repeat; r++) {
      for (const h of spec.headers) {
        yield rawHeader('PaxHeader', h.typeflag, h.announce ?? h.body.length);
        yield h.body;
        yield padding(h.body.length);
      }
      yield rawHeader(`f${r}`, '0', 0);
    }
    yield Buffer.alloc(2 * BLOCK);
  }
  return Readable.from(blocks()).pipe(createGzip({ level: 9 }));
}
