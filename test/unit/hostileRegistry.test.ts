// A registry that lies: a fake one on a loopback port (the boundary faked; the real registry
// is in test/integration) answers with what a hostile server could, and the client refuses
// each with an error naming the reference.
import { promises as fs } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { sha256, type Digest } from '../../engine/digest.js';
import { RegistryClient } from '../../engine/registry/client.js';
import { pullImage } from '../../engine/registry/pull.js';
import { registryReference } from '../../engine/registry/reference.js';
import { Store } from '../../engine/store/store.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;
let handler: Handler = (_req, res) => void res.writeHead(404).end();
let server: http.Server;
let address: string;
let dir: string;

beforeAll(async () => {
  server = http.createServer((req, res) => handler(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  address = `127.0.0.1:${(server.address() as { port: number }).port}`;
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-hostile-'));
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await fs.rm(dir, { recursive: true, force: true });
});

const client = (opts: { idleTimeoutMs?: number } = {}) => new RegistryClient(registryReference(`${address}/app:1`, {}), `pull ${address}/app:1`, { actions: 'pull', ...opts });
const d = (s: string) => sha256(s);

test('a redirect to a scheme other than http(s) is not followed', async () => {
  handler = (_req, res) => void res.writeHead(307, { location: 'file:///etc/passwd' }).end();
  await expect(client().getBlobBytes(d('x'), 100)).rejects.toThrow(
    `pull ${address}/app:1: registry ${address} redirected GET /v2/app/blobs/${d('x')} to file: (only http and https are followed)`,
  );
});

test('endless redirects stop', async () => {
  handler = (req, res) => void res.writeHead(302, { location: `${req.url}x` }).end();
  await expect(client().getBlobBytes(d('x'), 100)).rejects.toThrow('more than 5 times');
});

test('a manifest over the bound is refused, whether announced or not', async () => {
  handler = (_req, res) => void res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': 2000 }).end(Buffer.alloc(2000, 0x20));
  await expect(client().getManifest('1', ['x'], 1000)).rejects.toThrow('with 2000 bytes, more than the 1000 allowed');
  handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
    res.write(Buffer.alloc(600, 0x20));
    res.end(Buffer.alloc(600, 0x20));
  };
  await expect(client().getManifest('1', ['x'], 1000)).rejects.toThrow('more than the 1000 bytes allowed');
});

test('a silent registry is dropped after the idle timeout (and tried again: 4 times in all)', async () => {
  handler = () => undefined; // never answers
  await expect(client({ idleTimeoutMs: 300 }).getBlobBytes(d('x'), 100)).rejects.toThrow('no data for 0.3s');
}, 20_000);

describe('pull', () => {
  const layer = gzipSync(Buffer.alloc(1024)); // not a valid tar, but it must not get that far
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [d('tar')] }, history: [] }));
  const manifestWith = (layerSize: number) =>
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layerSize }],
      }),
    );
  const serve =
    (manifest: Buffer, blobs: Record<string, Buffer>): Handler =>
    (req, res) => {
      if (req.url?.startsWith('/v2/app/manifests/')) return void res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(manifest);
      const blob = blobs[req.url!.slice('/v2/app/blobs/'.length) as Digest];
      if (blob) return void res.writeHead(200).end(blob);
      res.writeHead(404).end();
    };

  test('a layer bigger than its descriptor says is refused while it streams', async () => {
    handler = serve(manifestWith(layer.length - 10), { [sha256(config)]: config, [sha256(layer)]: layer });
    const store = await Store.open(path.join(dir, 'big'));
    await expect(pullImage(store, `${address}/app:1`)).rejects.toThrow(
      `pull ${address}/app:1: layer ${sha256(layer)} is bigger than the ${layer.length - 10} bytes its descriptor says`,
    );
    expect(await store.hasBlob(sha256(layer))).toBe(false);
  });

  test('a config that does not hash to its digest is refused', async () => {
    const other = Buffer.from(config.toString().replace('amd64', 'arm64'));
    handler = serve(manifestWith(layer.length), { [sha256(config)]: other });
    const store = await Store.open(path.join(dir, 'config'));
    await expect(pullImage(store, `${address}/app:1`)).rejects.toThrow(`pull ${address}/app:1: config ${sha256(config)} arrived as ${sha256(other)}`);
  });

  test('a manifest that is not the digest asked for is refused', async () => {
    handler = serve(manifestWith(layer.length), {});
    const store = await Store.open(path.join(dir, 'digest'));
    const want = d('another manifest');
    await expect(pullImage(store, `${address}/app@${want}`)).rejects.toThrow(`manifest ${want} arrived as ${sha256(manifestWith(layer.length))}`);
  });
});
