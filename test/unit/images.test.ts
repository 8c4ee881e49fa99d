// The store's images as docker keeps them: untagged images stay findable; rmi untags a name
// and removes an image with its last one (by ID only with one tag, or with force); prune
// removes dangling images; a layer goes only when no image uses it and no mount holds it.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { importLayer } from '../../engine/archive/import.js';
import { commitImage } from '../../engine/image/commit.js';
import type { LayerRef } from '../../engine/image/types.js';
import { mountReadOnly } from '../../engine/runtime/overlay.js';
import { isDangling, listImages, tagImage } from '../../engine/store/images.js';
import { pruneImages, removeImage } from '../../engine/store/remove.js';
import { type Store } from '../../engine/store/store.js';
import { directoryUsage, layerUsage } from '../../engine/store/usage.js';
import { tempStores } from '../helpers/tempStore.js';

const openStore = tempStores('images');

async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mode: 0o644, mtime: new Date(0) }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

async function layer(store: Store, files: Record<string, string>, parent?: LayerRef): Promise<LayerRef> {
  return importLayer(store, Readable.from([await tarOf(files)]), parent?.chainId);
}

let clock = 0;
async function image(store: Store, layers: LayerRef[], tags: string[], labels?: Record<string, string>) {
  return commitImage(
    store,
    { config: { Labels: labels, Env: [`N=${clock}`] }, layers, history: layers.map(() => ({ created_by: 'test' })), architecture: 'amd64', os: 'linux' },
    { tags, now: new Date(1_700_000_000_000 + 1000 * clock++) },
  );
}

const rows = (r: Awaited<ReturnType<typeof removeImage>>) => r.map((x) => ('untagged' in x ? `Untagged: ${x.untagged}` : `Deleted: ${x.deleted}`));

describe('untagged images', () => {
  test('a build without tags, and an image whose tag moved, are listed as dangling and found by ID', async () => {
    const store = await openStore();
    const base = await layer(store, { a: 'a' });
    const untagged = await image(store, [base], []);
    const first = await image(store, [base], ['app:1']);
    const second = await image(store, [base], ['app:1']);
    const images = await listImages(store);
    expect(images.map((i) => [i.id, i.tags, isDangling(i)])).toEqual([
      [second.imageId, ['app:1'], false],
      [first.imageId, [], true],
      [untagged.imageId, [], true],
    ]);
    expect((await store.findImage(first.imageId.slice(7, 19)))?.configDigest).toBe(first.imageId);
    expect((await store.findImage(untagged.imageId))?.configDigest).toBe(untagged.imageId);
  });

  test('an ID prefix that several images share is an error, not a guess', async () => {
    const store = await openStore();
    const base = await layer(store, { a: 'a' });
    const ids = [];
    for (let i = 0; i < 20; i++) ids.push((await image(store, [base], [])).imageId);
    const shared = ids.map((d) => d[7]).find((c, i, all) => all.indexOf(c) !== i)!;
    await expect(store.findImage(shared)).rejects.toMatchObject({ code: 'IMAGE_AMBIGUOUS' });
  });
});

describe('rmi', () => {
  test('two tags: removing one only untags; by ID it needs force; the last tag takes image, layers and blobs', async () => {
    const store = await openStore();
    const base = await layer(store, { 'bin/tool': 'tool' });
    const top = await layer(store, { f: 'one\n' }, base);
    const keeper = await image(store, [base], ['base:1']);
    const app = await image(store, [base, top], ['app:1', 'app:2']);

    expect(rows(await removeImage(store, 'app:1'))).toEqual(['Untagged: app:1']);
    await tagImage(store, 'app:2', 'other/app');
    await expect(removeImage(store, app.imageId.slice(7, 19))).rejects.toThrow(
      `conflict: unable to delete ${app.imageId.slice(7, 19)} (must be forced) - image is referenced in multiple repositories`,
    );
    expect(rows(await removeImage(store, app.imageId.slice(7, 19), { force: true }))).toEqual([
      'Untagged: app:2',
      'Untagged: other/app:latest',
      `Deleted: ${app.imageId}`,
      `Deleted: ${top.chainId}`,
    ]);
    expect(await store.hasLayer(top.chainId)).toBe(false);
    expect(await store.hasLayer(base.chainId)).toBe(true); // base:1 still uses it
    expect(await store.hasBlob(app.manifestDigest)).toBe(false);
    expect(await store.hasBlob(app.imageId)).toBe(false);
    expect(await store.hasBlob(top.digest)).toBe(false);
    expect(await store.hasBlob(base.digest)).toBe(true);
    expect(await fs.readdir(path.join(store.root, 'l'))).toHaveLength(1);

    expect(rows(await removeImage(store, 'base:1'))).toEqual(['Untagged: base:1', `Deleted: ${keeper.imageId}`, `Deleted: ${base.chainId}`]);
    expect(await fs.readdir(path.join(store.root, 'layers'))).toEqual([]);
    await expect(removeImage(store, 'base:1')).rejects.toThrow('No such image: base:1');
  });

  test('an image with one tag goes by ID too (untagged first)', async () => {
    const store = await openStore();
    const l = await layer(store, { x: 'x' });
    const img = await image(store, [l], ['solo:1']);
    expect(rows(await removeImage(store, img.imageId))).toEqual(['Untagged: solo:1', `Deleted: ${img.imageId}`, `Deleted: ${l.chainId}`]);
  });

  test('a layer mounted by a running step stays; the image goes', async () => {
    const store = await openStore();
    const l = await layer(store, { x: 'x' });
    const img = await image(store, [l], ['busy:1']);
    const staging = await store.makeTempDir('test-mount');
    const mount = await mountReadOnly(store, [l.chainId], staging);
    try {
      expect(rows(await removeImage(store, 'busy:1'))).toEqual(['Untagged: busy:1', `Deleted: ${img.imageId}`]);
      expect(await store.hasLayer(l.chainId)).toBe(true);
      expect(await fs.readFile(path.join(mount.root, 'x'), 'utf8')).toBe('x');
    } finally {
      await mount.unmount();
      await fs.rm(staging, { recursive: true, force: true });
    }
  });
});

describe('image prune', () => {
  test('removes the dangling images matching the filters, reporting the bytes of the layers that went', async () => {
    const store = await openStore();
    const base = await layer(store, { 'bin/tool': 'tool' });
    const v1 = await layer(store, { f: 'one\n' }, base);
    const v2 = await layer(store, { f: 'two!!\n' }, base);
    const old = await image(store, [base, v1], ['app:1'], { run: 'x' });
    await image(store, [base, v2], ['app:1'], { run: 'x' });
    const otherDangling = await image(store, [base], [], { run: 'y' });

    const r = await pruneImages(store, { filters: ['label=run=x'] });
    expect(rows(r.rows)).toEqual([`Deleted: ${old.imageId}`, `Deleted: ${v1.chainId}`]);
    expect(r.reclaimed).toBe(4);
    expect((await listImages(store)).map((i) => i.id)).toContain(otherDangling.imageId);

    const all = await pruneImages(store, { all: true, filters: ['label!=run=y'] });
    expect(rows(all.rows)[0]).toBe('Untagged: app:1');
    expect(all.reclaimed).toBe(6); // v2's file; base is still used by the label run=y image
    expect((await listImages(store)).map((i) => i.id)).toEqual([otherDangling.imageId]);
  });
});

describe('layer usage as docker measures it', () => {
  test('files count once per inode; directories, empty files and whiteouts add nothing; symlinks their target length', async () => {
    const dir = path.join((await openStore()).root, 'usage');
    await fs.mkdir(path.join(dir, 'sub'), { recursive: true });
    await fs.writeFile(path.join(dir, 'sub', 'a'), '12345');
    await fs.link(path.join(dir, 'sub', 'a'), path.join(dir, 'b'));
    await fs.writeFile(path.join(dir, 'empty'), '');
    await fs.symlink('sub/a', path.join(dir, 'link'));
    expect(await directoryUsage(dir)).toBe(5 + 'sub/a'.length);
  });

  test('is kept beside the layer after the first measure', async () => {
    const store = await openStore();
    const l = await layer(store, { f: 'abc' });
    expect(await layerUsage(store, l.chainId)).toBe(3);
    await fs.writeFile(path.join(store.layerDiffDir(l.chainId), 'f'), 'longer now');
    expect(await layerUsage(store, l.chainId)).toBe(3);
  });
});
