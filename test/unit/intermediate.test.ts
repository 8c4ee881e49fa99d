// Intermediate images (a build's image after each step): found by ID, hidden from the list
// docker shows without -a, no longer intermediate once committed as a build's result; rmi
// takes the ones an image was built on along, prune those nothing builds on any more.
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { importLayer } from '../../engine/archive/import.js';
import type { LayerRef } from '../../engine/image/types.js';
import { isDangling, listImages } from '../../engine/store/images.js';
import { writeStepImages, type StepImage } from '../../engine/store/intermediate.js';
import { pruneImages, removeImage } from '../../engine/store/remove.js';
import { type Store } from '../../engine/store/store.js';
import { tempStores } from '../helpers/tempStore.js';

const openStore = tempStores('intermediate');

async function layer(store: Store, name: string, parent?: LayerRef): Promise<LayerRef> {
  const pack = tarStream.pack();
  pack.entry({ name, mode: 0o644, mtime: new Date(0) }, name);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  return importLayer(store, Readable.from([Buffer.concat(chunks)]), parent?.chainId);
}

const platform = { architecture: 'amd64', os: 'linux' };
const env = (v: string) => ({ config: { Env: [v] }, history: { created_by: `ENV ${v}`, empty_layer: true } });
const run = (l: LayerRef, text: string) => ({ history: { created_by: `RUN ${text}` }, layer: l });

/** Commits a step image as a build's result does: names it (or not) in index.json. */
async function commit(store: Store, image: StepImage, tags: string[]): Promise<void> {
  await store.setTags(tags, { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: image.manifestDigest, size: (await store.readBlob(image.manifestDigest)).length });
}

const shown = async (store: Store) => (await listImages(store)).filter((i) => !i.intermediate).map((i) => i.id);

test("each step's image builds on the one before; the last one, committed, is the build's image", async () => {
  const store = await openStore();
  const a = await layer(store, 'a');
  const [s1, s2, s3] = await writeStepImages(store, { parent: { platform }, steps: [[run(a, 'a')], [env('X=1')], [env('Y=2')]], sourceDateEpoch: 0 }, new Date(5000));
  const again = await writeStepImages(store, { parent: { platform }, steps: [[run(a, 'a')], [env('X=1')], [env('Y=2')]], sourceDateEpoch: 0 }, new Date(9000));
  expect(again).toEqual([s1, s2, s3]); // SOURCE_DATE_EPOCH: the same steps give the same IDs

  const top = await store.findImage(s3!.imageId.slice(7, 19));
  expect(top?.config.config.Env).toEqual(['Y=2']); // a patch sets the whole field, as the planner's do
  expect(top?.config.history.map((h) => h.created_by)).toEqual(['RUN a', 'ENV X=1', 'ENV Y=2']);
  expect(top?.layers.map((l) => l.diffId)).toEqual([a.diffId]);
  // Written on top of the second one, read back from the store: the same image.
  const [s3b] = await writeStepImages(store, { parent: { manifestDigest: s2!.manifestDigest }, steps: [[env('Y=2')]], sourceDateEpoch: 0 });
  expect(s3b).toEqual(s3);

  expect(await shown(store)).toEqual([]);
  expect((await listImages(store)).every((i) => i.intermediate && !isDangling(i))).toBe(true);
  await commit(store, s3!, []);
  expect(await shown(store)).toEqual([s3!.imageId]);
  expect(isDangling((await listImages(store)).find((i) => i.id === s3!.imageId)!)).toBe(true);
});

test('rmi of a built image removes the intermediate images only it was built on; prune removes those of a failed build', async () => {
  const store = await openStore();
  const a = await layer(store, 'a');
  const b = await layer(store, 'b', a);
  const now = new Date(1_700_000_000_000);
  const [base] = await writeStepImages(store, { parent: { platform }, steps: [[run(a, 'a')]] }, now);
  await commit(store, base!, ['base:1']);
  // Two builds FROM base:1 share their first step; one goes on and is tagged, one fails after it.
  const [shared, built] = await writeStepImages(store, { parent: { manifestDigest: base!.manifestDigest }, steps: [[env('X=1')], [run(b, 'b')]] }, now);
  await commit(store, built!, ['app:1']);
  const [failed] = await writeStepImages(store, { parent: { manifestDigest: shared!.manifestDigest }, steps: [[env('Z=9')]] }, now);
  expect((await listImages(store)).map((i) => [i.id, i.intermediate])).toEqual(
    expect.arrayContaining([
      [shared!.imageId, true],
      [failed!.imageId, true],
      [built!.imageId, false],
    ]),
  );

  // The failed build's step still builds on `shared`: rmi app:1 keeps it.
  const rows = await removeImage(store, 'app:1');
  expect(rows.filter((r) => 'deleted' in r && r.deleted === built!.imageId)).toHaveLength(1);
  expect(rows.some((r) => 'deleted' in r && r.deleted === shared!.imageId)).toBe(false);
  expect(await store.hasLayer(b.chainId)).toBe(false);

  // Nothing tagged builds on the failed build's images: prune takes them, and only them.
  const pruned = await pruneImages(store);
  expect(pruned.rows.map((r) => ('deleted' in r ? r.deleted : ''))).toEqual(expect.arrayContaining([failed!.imageId, shared!.imageId]));
  expect((await listImages(store)).map((i) => i.id)).toEqual([base!.imageId]);
});

test('rmi takes along the chain of intermediate images under an image that nothing else builds on', async () => {
  const store = await openStore();
  const a = await layer(store, 'a');
  const [s1, s2, s3] = await writeStepImages(store, { parent: { platform }, steps: [[run(a, 'a')], [env('X=1')], [env('Y=2')]] });
  await commit(store, s3!, ['app:2']);
  const rows = await removeImage(store, 'app:2');
  expect(rows.map((r) => ('untagged' in r ? `Untagged: ${r.untagged}` : `Deleted: ${r.deleted}`))).toEqual([
    'Untagged: app:2',
    `Deleted: ${s3!.imageId}`,
    `Deleted: ${s2!.imageId}`,
    `Deleted: ${s1!.imageId}`,
    `Deleted: ${a.chainId}`,
  ]);
  expect(await listImages(store)).toEqual([]);
});
