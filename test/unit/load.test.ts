// strata load against hostile and broken archives, built here in memory: every one must fail
// with a message naming the problem and leave the store exactly as it was (no tag, no layer,
// no blob, nothing in tmp/). Good archives in docker's and the OCI layouts load.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import tarStream from 'tar-stream';
import { importRootfs } from '../../engine/archive/import.js';
import { loadArchive } from '../../engine/archive/load.js';
import { chainId, sha256, type Digest } from '../../engine/digest.js';
import { listImages } from '../../engine/store/images.js';
import { type Store } from '../../engine/store/store.js';
import { tempStores } from '../helpers/tempStore.js';

const openStore = tempStores('load');

type Entry = { name: string; body?: Buffer | string; type?: 'file' | 'symlink' | 'link' | 'directory'; linkname?: string };

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const e of entries) {
    const header = { name: e.name, type: e.type ?? 'file', linkname: e.linkname, mode: 0o644, mtime: new Date(0) };
    if (header.type === 'file') pack.entry(header, Buffer.from(e.body ?? ''));
    else pack.entry(header);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

interface Layer {
  tar: Buffer;
  diffId: Digest;
}
async function layerOf(files: Record<string, string>): Promise<Layer> {
  const tar = await tarOf(Object.entries(files).map(([name, body]) => ({ name, body })));
  return { tar, diffId: sha256(tar) };
}

function configOf(layers: Layer[], extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2024-01-01T00:00:00Z',
      config: { Cmd: ['sh'] },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map(() => ({ created_by: 'test' })),
      ...extra,
    }),
  );
}

/** docker ≤ 24's layout: <id>/layer.tar, <config hex>.json, manifest.json. */
function dockerArchive(layers: Layer[], tags: string[], config = configOf(layers)): Entry[] {
  const id = sha256(config).slice(7);
  return [
    ...layers.map((l, i) => ({ name: `layer${i}/layer.tar`, body: l.tar })),
    { name: `${id}.json`, body: config },
    { name: 'manifest.json', body: JSON.stringify([{ Config: `${id}.json`, RepoTags: tags, Layers: layers.map((_, i) => `layer${i}/layer.tar`) }]) },
  ];
}

/** An OCI image layout: blobs, index.json naming the image. */
function ociArchive(layers: Layer[], name: string | undefined, gz = false): Entry[] {
  const blobs = layers.map((l) => (gz ? gzipSync(l.tar) : l.tar));
  const config = configOf(layers);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: blobs.map((b) => ({ mediaType: `application/vnd.oci.image.layer.v1.tar${gz ? '+gzip' : ''}`, digest: sha256(b), size: b.length })),
    }),
  );
  const annotations = name ? { 'org.opencontainers.image.ref.name': name } : undefined;
  return [
    ...blobs.map((b) => ({ name: `blobs/sha256/${sha256(b).slice(7)}`, body: b })),
    { name: `blobs/sha256/${sha256(config).slice(7)}`, body: config },
    { name: `blobs/sha256/${sha256(manifest).slice(7)}`, body: manifest },
    { name: 'oci-layout', body: '{"imageLayoutVersion":"1.0.0"}' },
    {
      name: 'index.json',
      body: JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length, annotations }],
      }),
    },
  ];
}

/** Everything a load could leave behind. */
async function snapshot(store: Store): Promise<Record<string, unknown>> {
  const ls = (rel: string) => fs.readdir(path.join(store.root, rel)).then((x) => x.sort());
  return { layers: await ls('layers'), blobs: await ls('blobs/sha256'), l: await ls('l'), tmp: await ls('tmp'), index: await fs.readFile(store.indexPath(), 'utf8') };
}

const load = (store: Store, bytes: Buffer) => loadArchive(store, Readable.from([bytes]));

describe('archives that load', () => {
  test("docker's legacy layout, a layer symlinked as docker ≤ 24 writes a repeated one", async () => {
    const store = await openStore();
    const base = await layerOf({ 'etc/os': 'test\n' });
    const top = await layerOf({ 'app/run': 'echo hi\n' });
    const entries = dockerArchive([base, top], ['app:1']);
    // The top layer's file is a symlink to a copy elsewhere in the archive.
    entries.splice(1, 1, { name: 'other/layer.tar', body: top.tar }, { name: 'layer1/layer.tar', type: 'symlink', linkname: '../other/layer.tar' });
    const r = await load(store, await tarOf(entries));
    expect(r.images).toEqual([{ id: sha256(configOf([base, top])), tags: ['app:1'] }]);
    const img = await store.getImage('app:1');
    expect(img.layers.map((l) => l.chainId)).toEqual([base.diffId, chainId(base.diffId, top.diffId)]);
    expect(await fs.readFile(path.join(store.layerDiffDir(img.layers[1]!.chainId), 'app', 'run'), 'utf8')).toBe('echo hi\n');
    expect(await fs.readdir(path.join(store.root, 'tmp'))).toEqual([]);
    // Loading again changes nothing but the tag's time (docker's LastTagTime moves too).
    const noTimes = async () => ({ ...(await snapshot(store)), index: String((await snapshot(store)).index).replace(/"dev\.strata\.tag\.time": "[^"]*"/g, '') });
    const before = await noTimes();
    await load(store, await tarOf(entries));
    expect(await noTimes()).toEqual(before);
  });

  test('an OCI layout with gzip layers, the whole archive compressed; the name from ref.name', async () => {
    const store = await openStore();
    const l = await layerOf({ f: 'x' });
    const r = await load(store, gzipSync(await tarOf(ociArchive([l], 'oci/app:2', true))));
    expect(r.images[0]!.tags).toEqual(['oci/app:2']);
    const img = await store.getImage('oci/app:2');
    expect(img.layers[0]!.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
  });

  test('an untagged image (a bare ref.name is a tag without a repository)', async () => {
    const store = await openStore();
    const l = await layerOf({ f: 'y' });
    const r = await load(store, await tarOf(ociArchive([l], 'latest')));
    expect(r.images[0]!.tags).toEqual([]);
    expect((await listImages(store)).map((i) => i.tags)).toEqual([[]]);
  });

  test('a layer missing from the archive loads when the store has its chain (save --exclude-base)', async () => {
    const store = await openStore();
    const base = await layerOf({ b: 'base' });
    const top = await layerOf({ t: 'top' });
    await load(store, await tarOf(dockerArchive([base], ['base:1'])));
    const delta = dockerArchive([base, top], ['app:1']).filter((e) => e.name !== 'layer0/layer.tar');
    await load(store, await tarOf(delta));
    expect((await store.getImage('app:1')).layers).toHaveLength(2);
  });
});

describe('archives that fail and leave nothing', () => {
  const l = layerOf({ 'bin/x': 'payload '.repeat(500) });
  const cases: [string, () => Promise<Buffer>, RegExp][] = [
    ['a truncated archive', async () => (await tarOf(dockerArchive([await l], ['t:1']))).subarray(0, 3000), /damaged or truncated/],
    [
      'a layer whose content is not the diff_id the config names',
      async () => tarOf(dockerArchive([await l], ['t:1'], configOf([{ ...(await l), diffId: sha256('other') }]))),
      /unpacks to sha256:[0-9a-f]+, but the config's diff_id is/,
    ],
    [
      'a blob whose bytes are not its name',
      async () => {
        const { tar } = await l;
        return tarOf(ociArchive([await l], 'x/y:1').map((e) => (e.name.startsWith('blobs/') && e.body?.length === tar.length ? { ...e, body: Buffer.alloc(tar.length) } : e)));
      },
      /hashes to sha256:/,
    ],
    [
      'a config whose bytes are not its <hex>.json name',
      async () => {
        const forged = configOf([await l], { author: 'x' });
        return tarOf(dockerArchive([await l], ['t:1']).map((e) => (e.name.endsWith('.json') && e.name !== 'manifest.json' ? { ...e, body: forged } : e)));
      },
      /the config [0-9a-f]+\.json hashes to/,
    ],
    [
      'a manifest.json path that climbs out with ../',
      async () => tarOf([{ name: 'manifest.json', body: JSON.stringify([{ Config: '../../etc/passwd', RepoTags: ['t:1'], Layers: [] }]) }]),
      /leaves the archive/,
    ],
    ['an entry named with ..', async () => tarOf([{ name: 'a/../../evil', body: 'x' }, ...dockerArchive([await l], ['t:1'])]), /climbs out with \.\./],
    [
      'a symlinked layer that points outside the archive',
      async () =>
        tarOf(dockerArchive([await l], ['t:1']).map((e) => (e.name === 'layer0/layer.tar' ? { name: e.name, type: 'symlink' as const, linkname: '../../../etc/shadow' } : e))),
      /points outside the archive/,
    ],
    [
      'a symlink loop',
      async () =>
        tarOf([
          ...dockerArchive([await l], ['t:1']).filter((e) => e.name !== 'layer0/layer.tar'),
          { name: 'layer0/layer.tar', type: 'symlink', linkname: 'loop' },
          { name: 'layer0/loop', type: 'symlink', linkname: 'layer.tar' },
        ]),
      /too many links/,
    ],
    ['an entry twice', async () => tarOf([...dockerArchive([await l], ['t:1']), { name: 'manifest.json', body: '[]' }]), /holds "manifest.json" twice/],
    [
      'a layer neither in the archive nor in the store',
      async () => tarOf(dockerArchive([await l], ['t:1']).filter((e) => e.name !== 'layer0/layer.tar')),
      /neither in the archive/,
    ],
    ['a manifest.json larger than any real one', async () => tarOf([{ name: 'manifest.json', body: Buffer.alloc(9 << 20, 0x20) }]), /more than the \d+ allowed/],
    ['a root filesystem, not an image archive', async () => tarOf([{ name: 'etc/passwd', body: 'root:x:0:0::/:/bin/sh\n' }]), /not an image archive.*strata import/],
    ['a tag that is not a reference', async () => tarOf(dockerArchive([await l], ['Not A Tag'])), /not a valid tag/],
  ];

  test.each(cases)('%s', async (_name, make, message) => {
    const store = await openStore();
    const before = await snapshot(store);
    await expect(load(store, await make())).rejects.toThrow(message);
    expect(await snapshot(store)).toEqual(before);
  });
});

test('import refuses an image archive and points at strata load, keeping nothing', async () => {
  const store = await openStore();
  const before = await snapshot(store);
  const archive = await tarOf(dockerArchive([await layerOf({ f: 'x' })], ['t:1']));
  await expect(importRootfs(store, Readable.from([archive]), { tags: ['t:1'], changes: [], source: '-' })).rejects.toThrow(/image archive.*strata load -i FILE/);
  expect(await snapshot(store)).toEqual(before);
});
