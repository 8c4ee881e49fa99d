// Chunked uploads resumed from the offset the registry reports. Debian's docker-registry
// drops a session whose PATCH was cut (the integration test proves the push survives that by
// starting anew); registries that keep the bytes they got answer GET on the session with a
// Range, and the push must go on from exactly there. This fake registry keeps them.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { sha256 } from '../../engine/digest.js';
import { importRootfs } from '../../engine/archive/import.js';
import { CHUNK_BYTES, pushImage } from '../../engine/registry/push.js';
import { Store } from '../../engine/store/store.js';

interface FakeRegistry {
  address: string;
  /** Content-Range of each PATCH, as sent. */
  patches: string[];
  blobs: Map<string, Buffer>;
  stop(): Promise<void>;
}

/** Keeps what each PATCH delivered, cuts the connection of the PATCH during which the session passes `cutAt`. */
async function fakeRegistry(cutAt: number): Promise<FakeRegistry> {
  const sessions = new Map<string, Buffer[]>();
  const blobs = new Map<string, Buffer>();
  const patches: string[] = [];
  let cut = false;
  const size = (id: string) => sessions.get(id)!.reduce((n, b) => n + b.length, 0);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    const upload = /^\/v2\/app\/blobs\/uploads\/(\w*)$/.exec(url.pathname);
    if (req.method === 'HEAD' && url.pathname.startsWith('/v2/app/blobs/')) return void res.writeHead(blobs.has(url.pathname.slice(14)) ? 200 : 404).end();
    if (req.method === 'POST' && upload) {
      const id = String(sessions.size + 1);
      sessions.set(id, []);
      return void res.writeHead(202, { location: `/v2/app/blobs/uploads/${id}`, range: '0-0' }).end();
    }
    if (upload && sessions.has(upload[1]!)) {
      const id = upload[1]!;
      if (req.method === 'GET') return void res.writeHead(204, { location: `/v2/app/blobs/uploads/${id}`, range: `0-${size(id) - 1}` }).end();
      if (req.method === 'PATCH') {
        patches.push(String(req.headers['content-range']));
        const start = Number(String(req.headers['content-range']).split('-')[0]);
        if (start !== size(id)) return void res.writeHead(416).end();
        req.on('data', (c: Buffer) => {
          sessions.get(id)!.push(c);
          if (!cut && size(id) > cutAt) {
            cut = true;
            req.socket.destroy();
          }
        });
        req.on('end', () => res.writeHead(202, { location: `/v2/app/blobs/uploads/${id}`, range: `0-${size(id) - 1}` }).end());
        return;
      }
      if (req.method === 'PUT') {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const all = Buffer.concat([...sessions.get(id)!, ...chunks]);
          const digest = url.searchParams.get('digest')!;
          if (sha256(all) !== digest) return void res.writeHead(400).end('{"errors":[{"code":"DIGEST_INVALID"}]}');
          blobs.set(digest, all);
          res.writeHead(201).end();
        });
        return;
      }
    }
    if (req.method === 'PUT' && url.pathname.startsWith('/v2/app/manifests/')) {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => res.writeHead(201, { 'docker-content-digest': sha256(Buffer.concat(chunks)) }).end());
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: `127.0.0.1:${(server.address() as { port: number }).port}`,
    patches,
    blobs,
    stop: () => new Promise((r) => server.close(() => r())),
  };
}

let dir: string;
afterAll(() => fs.rm(dir, { recursive: true, force: true }));

test('an upload cut in its second chunk resumes at the byte the registry has, and the blob arrives whole', async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-resume-'));
  const store = await Store.open(path.join(dir, 'store'));
  // One layer of random bytes (stored gzip segments: about its own size), over two chunks.
  const pack = tarStream.pack();
  pack.entry({ name: 'noise.bin', mode: 0o644, mtime: new Date(0) }, randomBytes(CHUNK_BYTES + (8 << 20)));
  pack.finalize();
  await importRootfs(store, Readable.from(pack), { tags: ['noise:1'], changes: [], source: 'test' });
  const image = await store.getImage('noise:1');

  const cutAt = CHUNK_BYTES + 3_000_000;
  const registry = await fakeRegistry(cutAt);
  try {
    const r = await pushImage(store, image, `${registry.address}/app:1`);
    const layer = r.blobs.find((b) => b.kind === 'layer')!;
    expect(registry.blobs.get(layer.digest)?.length).toBe(layer.size);
    // Chunk 1, chunk 2 (cut), then on from what the registry had: past the cut, not a chunk boundary.
    expect(registry.patches[0]).toBe(`0-${CHUNK_BYTES - 1}`);
    expect(registry.patches[1]).toBe(`${CHUNK_BYTES}-${layer.size - 1}`);
    const resumedAt = Number(registry.patches[2]!.split('-')[0]);
    expect(resumedAt).toBeGreaterThan(cutAt);
    expect(resumedAt).toBeLessThan(layer.size);
    expect(registry.patches).toHaveLength(3);
  } finally {
    await registry.stop();
  }
});
