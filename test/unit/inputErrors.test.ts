// Errors input causes, as users see them (engine/inputErrors.ts), where a worker may write an
// output (engine/archive/output.ts), and TLS settings from the environment (worker/temporal.ts).
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { outputComponents } from '../../engine/archive/output.js';
import { type EngineError, UserInputError } from '../../engine/errors.js';
import { asEngineError, hideStorePaths } from '../../engine/inputErrors.js';
import { tlsFromEnv } from '../../worker/temporal.js';

const ROOT = '/var/lib/strata';
const HEX = 'a'.repeat(64);

function errno(code: string, syscall: string, p: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: some text, ${syscall} '${p}'`) as NodeJS.ErrnoException;
  e.code = code;
  e.syscall = syscall;
  e.path = p;
  return e;
}

describe('asEngineError', () => {
  test.each<[string, NodeJS.ErrnoException, string, string]>([
    ['a name too long, in a step rootfs', errno('ENAMETOOLONG', 'open', `${ROOT}/tmp/copy-1-2/merged/usr/x`), 'FS_ENAMETOOLONG', 'open /usr/x: some text (ENAMETOOLONG)'],
    ['a loop, in a layer', errno('ELOOP', 'stat', `${ROOT}/layers/${HEX}/diff/a/b`), 'FS_ELOOP', 'stat /a/b: some text (ELOOP)'],
    ['EINVAL in the context', errno('EINVAL', 'rename', `${ROOT}/contexts/${HEX}/x`), 'FS_EINVAL', 'rename /x: some text (EINVAL)'],
    ['the root of a rootfs', errno('EISDIR', 'open', `${ROOT}/tmp/run-1-2/upper`), 'FS_EISDIR', 'open /: some text (EISDIR)'],
  ])('%s', (_name, err, code, message) => {
    const mapped = asEngineError(err, ROOT);
    expect(mapped).toBeInstanceOf(UserInputError);
    expect({ code: (mapped as EngineError).code, message: (mapped as EngineError).message }).toEqual({ code, message });
  });

  test('a truncated gzip stream', () => {
    let err: unknown;
    try {
      gunzipSync(Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3, 0x4b]));
    } catch (e) {
      err = e;
    }
    const mapped = asEngineError(err, ROOT) as EngineError;
    expect(mapped).toBeInstanceOf(UserInputError);
    expect(mapped.code).toBe('DECOMPRESS_FAILED');
    expect(mapped.message).toMatch(/^decompress: the gzip data is damaged or truncated/);
  });

  test.each(['ENOSPC', 'EIO', 'EMFILE', 'EBUSY', 'ECONNRESET'])('%s stays as it is (worth a retry)', (code) => {
    const err = errno(code, 'write', `${ROOT}/blobs/x`);
    expect(asEngineError(err, ROOT)).toBe(err);
  });

  test('an engine error stays as it is', () => {
    const err = new UserInputError('X', 'x: y');
    expect(asEngineError(err, ROOT)).toBe(err);
  });
});

describe('hideStorePaths', () => {
  test.each([
    [`open '${ROOT}/tmp/copy-ab-cd/merged/etc/passwd'`, "open '/etc/passwd'"],
    [`${ROOT}/tmp/run-ab-cd/mounts/m0/merged/x: gone`, '/x: gone'],
    [`read ${ROOT}/layers/${HEX}/diff/bin/sh`, 'read /bin/sh'],
    [`no ${ROOT}/contexts/${HEX}/src/a.c`, 'no /src/a.c'],
    [`lock ${ROOT}/index.json`, 'lock $STRATA_HOME/index.json'],
    ['nothing of the store', 'nothing of the store'],
  ])('%s', (input, want) => {
    expect(hideStorePaths(input, ROOT)).toBe(want);
  });
});

describe('outputComponents', () => {
  test.each<[string, string[] | string]>([
    ['app.tar', ['app.tar']],
    ['sub/app.tar', ['sub', 'app.tar']],
    ['/out/sub/app.tar', ['sub', 'app.tar']],
    ['/out//app.tar', ['app.tar']],
    ['/outside/app.tar', "is not inside the worker's output directory /out"],
    ['/out2/app.tar', "is not inside the worker's output directory /out"],
    ['/out', 'it names a directory'],
    ['/out/', 'it names a directory'],
    ['sub/', 'it names a directory'],
    ['../app.tar', 'a `..` or `.` component is not allowed'],
    ['/out/a/../../etc/x', 'a `..` or `.` component is not allowed'],
    ['./app.tar', 'a `..` or `.` component is not allowed'],
    ['', 'not a file name'],
    ['a\0b', 'not a file name'],
  ])('%s', (dest, want) => {
    if (Array.isArray(want)) expect(outputComponents('/out', dest)).toEqual(want);
    else expect(() => outputComponents('/out', dest)).toThrow(want);
  });
});

describe('tlsFromEnv', () => {
  test('nothing set: plain gRPC', () => {
    expect(tlsFromEnv({})).toBeUndefined();
  });

  test('a client certificate, its key, the CA and a server name, read from their files', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-tlsenv-'));
    try {
      for (const f of ['c.pem', 'k.pem', 'ca.pem']) await fs.writeFile(path.join(dir, f), `contents of ${f}`);
      const tls = tlsFromEnv({
        TEMPORAL_TLS_CERT: path.join(dir, 'c.pem'),
        TEMPORAL_TLS_KEY: path.join(dir, 'k.pem'),
        TEMPORAL_TLS_CA: path.join(dir, 'ca.pem'),
        TEMPORAL_TLS_SERVER_NAME: 'temporal',
      });
      expect({
        crt: tls?.clientCertPair?.crt.toString(),
        key: tls?.clientCertPair?.key.toString(),
        ca: tls?.serverRootCACertificate?.toString(),
        name: tls?.serverNameOverride,
      }).toEqual({ crt: 'contents of c.pem', key: 'contents of k.pem', ca: 'contents of ca.pem', name: 'temporal' });
      expect(() => tlsFromEnv({ TEMPORAL_TLS_CA: path.join(dir, 'missing.pem') })).toThrow(
        `connect temporal: cannot read TEMPORAL_TLS_CA ${path.join(dir, 'missing.pem')}: ENOENT`,
      );
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('import of a damaged archive', () => {
  test('a truncated gzip is a user error, not a crash', async () => {
    const { importLayer } = await import('../../engine/archive/import.js');
    const { Store } = await import('../../engine/store/store.js');
    const { Readable } = await import('node:stream');
    const { gzipSync } = await import('node:zlib');
    const { randomBytes } = await import('node:crypto');
    const home = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-import-'));
    try {
      const store = await Store.open(home);
      // A tar of one incompressible file, gzip-compressed, cut in half.
      const header = Buffer.alloc(512);
      header.write('big', 0);
      header.write('0000644\0', 100);
      header.write('0000000\0', 108);
      header.write('0000000\0', 116);
      header.write((100_000).toString(8).padStart(11, '0') + '\0', 124);
      header.write('00000000000\0', 136);
      header.write('0', 156);
      header.write('ustar\x0000', 257, 'latin1');
      header.fill(' ', 148, 156);
      let sum = 0;
      for (const c of header) sum += c;
      header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
      const gz = gzipSync(Buffer.concat([header, randomBytes(100_000), Buffer.alloc(1024 + 96)]));
      await expect(importLayer(store, Readable.from([gz.subarray(0, gz.length >> 1)]))).rejects.toMatchObject({ code: 'DECOMPRESS_FAILED', userError: true });
    } finally {
      await fs.rm(home, { recursive: true, force: true });
    }
  });
});
