// Tar archives whose extended headers would take hundreds of MB of memory: a few hundred KB
// compressed. Each is extracted (decompressed, read, written) in a child node with a 256 MB
// heap and must end in a clear TAR_LIMIT / TAR_UNSUPPORTED error, as a user error.
import { OUTCOME_HELPER, lastOutcome, runBounded } from '../helpers/bounded.js';

async function extractBounded(spec: string) {
  const r = await runBounded(`
    const { decompressed } = await import(DIST + '/engine/archive/compression.js');
    const { extractTar } = await import(DIST + '/engine/fsutil/extract.js');
    const { gzipBomb, paxRecords } = await import(DIST + '/test/helpers/tarcraft.js');
    const fs = await import('node:fs/promises');
    const os = await import('node:os');
    ${OUTCOME_HELPER}
    const dir = await fs.mkdtemp(os.tmpdir() + '/strata-tarlimit-');
    try {
      const { stream } = await decompressed(gzipBomb(${spec}));
      await outcome(extractTar(stream, dir, { whiteouts: 'keep', sameOwner: false }));
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  `);
  const o = lastOutcome(r);
  // What the child held at the end: the archive was refused before it could grow.
  expect(o.rss).toBeLessThan(200 * 1024 * 1024);
  return o;
}

describe('extended headers are bounded', () => {
  test('many pax headers before one entry (360,000 records in 40 headers): refused at the entry limit', async () => {
    const o = await extractBounded(`{ headers: Array.from({ length: 40 }, (_, i) => ({ typeflag: 'x', body: paxRecords(9000, 'k' + i + '_') })), repeat: 1 }`);
    expect(o).toMatchObject({ ok: false, code: 'TAR_LIMIT' });
    expect(o.message).toMatch(/^read tar: entry at byte \d+: more than 10000 entry pax records \(strata's limit\)$/);
  }, 60_000);

  test('one header of 100,000 records', async () => {
    const o = await extractBounded(`{ headers: [{ typeflag: 'x', body: paxRecords(100000, 'k').subarray(0, 1 << 20) }], repeat: 1 }`);
    expect(o).toMatchObject({ ok: false, code: 'TAR_LIMIT', message: "read tar: entry at byte 0: more than 10000 pax records in one header (strata's limit)" });
  }, 60_000);

  test('global records with distinct keys in every header: refused once 1,000 are in force', async () => {
    const o = await extractBounded(`{ headers: Array.from({ length: 3 }, (_, i) => ({ typeflag: 'g', body: paxRecords(900, 'g' + i + '_') })), repeat: 1 }`);
    expect(o).toMatchObject({ ok: false, code: 'TAR_LIMIT' });
    expect(o.message).toMatch(/^read tar: entry at byte \d+: more than 1000 global pax records \(strata's limit\)$/);
  }, 60_000);

  test('the same global records again and again are fine', async () => {
    const o = await extractBounded(`{ headers: [{ typeflag: 'g', body: paxRecords(900, 'g') }], repeat: 300 }`);
    expect(o.ok).toBe(true);
  }, 60_000);

  test('a pax header announcing 2 GiB', async () => {
    const o = await extractBounded(`{ headers: [{ typeflag: 'x', body: Buffer.alloc(0), announce: 2 ** 31 }], repeat: 1 }`);
    expect(o).toMatchObject({ ok: false, code: 'TAR_UNSUPPORTED', message: 'read tar: entry at byte 0: extended header of 2147483648 bytes, more than the 1048576 read' });
  }, 60_000);

  test('xattrs of many entries, queued until the end of the extraction: refused past 64 MiB', async () => {
    const o = await extractBounded(`{ headers: [{ typeflag: 'x', body: paxRecords(1, 'SCHILY.xattr.user.big', 'v'.repeat(60000)) }], repeat: 1200 }`);
    expect(o).toMatchObject({ ok: false, code: 'TAR_LIMIT' });
    expect(o.message).toMatch(/^extract tar: entry "f\d+": extended attributes of more than 67108864 bytes wait to be written \(strata's limit\)$/);
  }, 60_000);

  test('a GNU long name of 1 MiB', async () => {
    const o = await extractBounded(`{ headers: [{ typeflag: 'L', body: Buffer.alloc(1 << 20, 0x61) }], repeat: 1 }`);
    expect(o).toMatchObject({ ok: false, code: 'TAR_UNSUPPORTED' });
    expect(o.message).toBe('read tar: entry at byte 0: extended header of 1048576 bytes, more than the 65536 read');
  }, 60_000);
});
