// The remote store's layout and its distrust of the remote: a fake registry on a loopback port
// (the boundary faked; test/integration/remote.test.ts runs the real one) serves what a
// hostile or broken remote could, and nothing unverified reaches the store.
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import { chainId, sha256, type Digest } from '../../engine/digest.js';
import { readCacheEntry } from '../../engine/cache/entries.js';
import { CACHE_CONFIG_TYPE, cacheTag, LAYER_CONFIG_TYPE, layerTag, RemoteStore, remoteFromEnv } from '../../engine/remote/remoteStore.js';
import { tempStores } from '../helpers/tempStore.js';

const newStore = tempStores('remote');
let server: http.Server;
let address: string;
/** What the fake registry holds: manifests by tag, blobs by digest (repository `cache`). */
let manifests: Record<string, Buffer> = {};
let blobs: Record<string, Buffer> = {};

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const url = req.url ?? '';
    if (url.startsWith('/v2/cache/manifests/')) {
      const m = manifests[url.slice('/v2/cache/manifests/'.length)];
      return void (m ? res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(m) : res.writeHead(404).end());
    }
    if (url.startsWith('/v2/cache/blobs/')) {
      const b = blobs[url.slice('/v2/cache/blobs/'.length)];
      return void (b ? res.writeHead(200, { 'content-length': b.length }).end(req.method === 'HEAD' ? undefined : b) : res.writeHead(404).end());
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  address = `127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});
beforeEach(() => {
  manifests = {};
  blobs = {};
});

const remote = () => new RemoteStore(`${address}/cache`, { env: {} });
/** An empty tar (two zero blocks): a real layer, gzipped as pushes send them. */
const TAR = Buffer.alloc(1024);
const DIFF = sha256(TAR);
const GZ = gzipSync(TAR);

function blob(bytes: Buffer): { mediaType: string; digest: Digest; size: number } {
  blobs[sha256(bytes)] = bytes;
  return { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(bytes), size: bytes.length };
}

/** Puts a manifest under `tag` whose config is `config` (of `type`) and whose layers are `layers`. */
function artifact(tag: string, type: string, config: unknown, layers: Buffer[]): void {
  const c = Buffer.from(JSON.stringify(config));
  blobs[sha256(c)] = c;
  manifests[tag] = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: type, digest: sha256(c), size: c.length },
      layers: layers.map(blob),
    }),
  );
}

const history = { created_by: 'RUN true' };

test('STRATA_REMOTE names a repository: a tag or digest is refused; tags are layer-/cache- and the hex', () => {
  expect(remoteFromEnv({})).toBeUndefined();
  expect(remoteFromEnv({ STRATA_REMOTE: '127.0.0.1:5000/cache' })?.name).toBe('127.0.0.1:5000/cache');
  expect(() => new RemoteStore('127.0.0.1:5000/cache:1')).toThrow('STRATA_REMOTE must be REGISTRY/REPOSITORY without tag or digest');
  expect(() => new RemoteStore(`127.0.0.1:5000/cache@${DIFF}`)).toThrow('without tag or digest');
  expect(layerTag(DIFF)).toBe(`layer-${DIFF.slice(7)}`);
  expect(cacheTag(DIFF)).toBe(`cache-${DIFF.slice(7)}`);
});

test('a layer is fetched by chainID, verified, and unpacked; a record naming another chain is refused', async () => {
  const store = await newStore();
  artifact(layerTag(DIFF), LAYER_CONFIG_TYPE, { diffId: DIFF }, [GZ]);
  await remote().getLayers(store, [DIFF]);
  expect((await store.readLayerMeta(DIFF)).diffId).toBe(DIFF);

  const other = await newStore();
  const lie = chainId(DIFF, DIFF);
  artifact(layerTag(lie), LAYER_CONFIG_TYPE, { diffId: DIFF }, [GZ]); // no parent: chainID would be DIFF
  await expect(remote().getLayers(other, [lie])).rejects.toThrow(`layer ${lie}: its record names another chain`);
  expect(await other.hasLayer(lie)).toBe(false);
});

test('a layer whose blob unpacks to another diffID is not stored', async () => {
  const store = await newStore();
  const claimed = sha256('something else');
  artifact(layerTag(claimed), LAYER_CONFIG_TYPE, { diffId: claimed }, [GZ]);
  await expect(remote().getLayers(store, [claimed])).rejects.toThrow(`unpacks to ${DIFF}, the config says ${claimed}`);
  expect(await store.hasLayer(claimed)).toBe(false);
});

test('a cache entry is taken only for its key and a parent it stacks on, from its own manifest', async () => {
  const store = await newStore();
  const key = sha256('key');
  const layer = { diffId: DIFF, chainId: DIFF, size: 1024, digest: DIFF, mediaType: 'x', blobSize: 1 };
  expect(await remote().getCacheEntry(store, key, undefined)).toBe(false); // absent

  artifact(cacheTag(key), CACHE_CONFIG_TYPE, { key: sha256('another key'), layer, history }, [GZ]);
  await expect(remote().getCacheEntry(store, key, undefined)).rejects.toThrow('not an entry for that key');

  artifact(cacheTag(key), CACHE_CONFIG_TYPE, { key, layer, history }, [GZ]);
  expect(await remote().getCacheEntry(store, key, sha256('another parent'))).toBe(false); // made on another parent
  expect(await readCacheEntry(store, key)).toBeUndefined();

  artifact(cacheTag(key), CACHE_CONFIG_TYPE, { key, layer, history }, []);
  await expect(remote().getCacheEntry(store, key, undefined)).rejects.toThrow('its manifest lists 0 blobs, not 1');

  artifact(cacheTag(key), CACHE_CONFIG_TYPE, { key, layer, history }, [GZ]);
  expect(await remote().getCacheEntry(store, key, undefined)).toBe(true);
  const entry = await readCacheEntry(store, key);
  // The layer as this store records it, not as the remote described it.
  expect(entry?.layer).toEqual({ diffId: DIFF, chainId: DIFF, size: 1024, digest: DIFF, mediaType: 'application/vnd.oci.image.layer.v1.tar', blobSize: 1024 });
  expect(await store.hasLayer(DIFF)).toBe(true);
});

test('a config that does not hash to its digest, or of another type, is refused', async () => {
  const store = await newStore();
  const key = sha256('k2');
  artifact(cacheTag(key), LAYER_CONFIG_TYPE, { key, history }, []);
  await expect(remote().getCacheEntry(store, key, undefined)).rejects.toThrow(`is not a ${CACHE_CONFIG_TYPE} manifest`);
  artifact(cacheTag(key), CACHE_CONFIG_TYPE, { key, history }, []);
  const m = JSON.parse(manifests[cacheTag(key)]!.toString()) as { config: { digest: string } };
  blobs[m.config.digest] = Buffer.from(JSON.stringify({ key, history: { created_by: 'forged' } }));
  await expect(remote().getCacheEntry(store, key, undefined)).rejects.toThrow(`its config ${m.config.digest} arrived as`);
});

test('a raw blob is verified against its digest; one the remote lacks is not found', async () => {
  const store = await newStore();
  const want = sha256('context');
  blobs[want] = Buffer.from('not the context');
  await expect(remote().getBlobs(store, [want])).rejects.toThrow();
  expect(await store.hasBlob(want)).toBe(false);
  await expect(remote().getBlobs(store, [sha256('absent')])).rejects.toThrow(`is neither in this store nor in ${address}/cache`);
  blobs[want] = Buffer.from('context');
  await remote().getBlobs(store, [want]);
  expect((await store.readBlob(want)).toString()).toBe('context');
});
