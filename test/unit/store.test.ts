// The store on a temp dir: content-addressed, idempotent, atomic blob writes verified on read;
// layer commits (idempotent, short links); tags under a lock; finding images by tag or ID.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { chainId, digestHex, sha256, type Digest } from '../../engine/digest.js';
import { DigestMismatchError, NotFoundError } from '../../engine/errors.js';
import { commitImage } from '../../engine/image/commit.js';
import { MEDIA_TYPE_MANIFEST, type Descriptor, type ImageState } from '../../engine/image/types.js';
import { type Store } from '../../engine/store/store.js';
import { tempStores } from '../helpers/tempStore.js';

// ---- helpers ------------------------------------------------------------------------------

const openStore = tempStores('store');

const ls = (store: Store, rel: string) => fs.readdir(path.join(store.root, rel));
const tmpEntries = (store: Store) => ls(store, 'tmp');
/** Blob files, temp files included (they start with a dot). */
const blobEntries = (store: Store) => ls(store, 'blobs/sha256');

/** A stream that yields `chunks`, then fails when `fail` is set. */
function source(chunks: (string | Buffer)[], fail?: Error): Readable {
  return Readable.from(
    (async function* () {
      for (const c of chunks) yield Buffer.from(c);
      if (fail) throw fail;
    })(),
  );
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

// ---- blobs --------------------------------------------------------------------------------

interface PutRow {
  name: string;
  content: Buffer;
  put: (store: Store, content: Buffer) => Promise<{ digest: Digest; size: number }>;
}

const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 256));
const chunked = (b: Buffer, n: number) => Array.from({ length: Math.ceil(b.length / n) }, (_, i) => b.subarray(i * n, (i + 1) * n));

const putRows: PutRow[] = [
  { name: 'putBlob("hello")', content: Buffer.from('hello'), put: (s) => s.putBlob('hello') },
  { name: 'putBlob(Uint8Array of 300 kB)', content: bytes, put: (s, c) => s.putBlob(new Uint8Array(c)) },
  { name: 'putBlob("") (empty)', content: Buffer.alloc(0), put: (s) => s.putBlob('') },
  { name: 'putBlobStream(one chunk)', content: Buffer.from('hello'), put: (s, c) => s.putBlobStream(source([c])) },
  { name: 'putBlobStream(300 kB in 7 kB chunks)', content: bytes, put: (s, c) => s.putBlobStream(source(chunked(c, 7000))) },
  { name: 'putBlobStream(no chunks)', content: Buffer.alloc(0), put: (s) => s.putBlobStream(source([])) },
  {
    name: 'putBlobStream with the right expected digest',
    content: Buffer.from('checked'),
    put: (s, c) => s.putBlobStream(source([c]), sha256(c)),
  },
];

describe('put: content-addressed and idempotent', () => {
  test.each(putRows)('$name', async ({ content, put }) => {
    const store = await openStore();
    const first = await put(store, content);
    expect(first).toEqual({ digest: sha256(content), size: content.length });
    expect(store.blobPath(first.digest)).toBe(path.join(store.root, 'blobs', 'sha256', digestHex(sha256(content))));
    expect((await fs.readFile(store.blobPath(first.digest))).equals(content)).toBe(true);
    const second = await put(store, content);
    expect(second).toEqual(first);
    expect(await blobEntries(store)).toEqual([digestHex(first.digest)]);
    expect(await tmpEntries(store)).toEqual([]);
    expect((await store.readBlob(first.digest)).equals(content)).toBe(true);
  });

  test('putBlob and putBlobStream of the same bytes give the same single blob', async () => {
    const store = await openStore();
    const a = await store.putBlob(bytes);
    const b = await store.putBlobStream(source(chunked(bytes, 4096)));
    expect(b).toEqual(a);
    expect(await blobEntries(store)).toEqual([digestHex(a.digest)]);
  });
});

describe('put: failures store nothing', () => {
  const wrong = sha256('something else');
  const rows: { name: string; put: (s: Store) => Promise<unknown>; error: new (...a: never[]) => Error }[] = [
    { name: 'putBlob with a wrong expected digest', put: (s) => s.putBlob('hello', wrong), error: DigestMismatchError },
    { name: 'putBlobStream with a wrong expected digest', put: (s) => s.putBlobStream(source(['hel', 'lo']), wrong), error: DigestMismatchError },
    {
      name: 'putBlobStream whose source fails midway',
      put: (s) => s.putBlobStream(source(['hel', 'lo'], new Error('connection reset'))),
      error: Error,
    },
  ];
  test.each(rows)('$name', async ({ put, error }) => {
    const store = await openStore();
    const err = await rejection(put(store));
    expect(err).toBeInstanceOf(error);
    expect(await blobEntries(store)).toEqual([]);
    expect(await tmpEntries(store)).toEqual([]);
    expect(await store.hasBlob(sha256('hello'))).toBe(false);
  });
});

describe('readBlob verifies', () => {
  test('a flipped byte in the stored blob: DigestMismatchError naming the digest', async () => {
    const store = await openStore();
    const { digest } = await store.putBlob('{"a":1}');
    const file = store.blobPath(digest);
    const buf = await fs.readFile(file);
    buf[3] ^= 0x01;
    await fs.writeFile(file, buf);
    const err = await rejection(store.readBlob(digest));
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect((err as Error).message).toContain(digest);
    await expect(store.readJsonBlob(digest)).rejects.toBeInstanceOf(DigestMismatchError);
  });

  test('a missing blob: NotFoundError BLOB_NOT_FOUND', async () => {
    const store = await openStore();
    const err = await rejection(store.readBlob(sha256('absent')));
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).code).toBe('BLOB_NOT_FOUND');
  });
});

// ---- layers -------------------------------------------------------------------------------

/** A staged snapshot directory holding one file. */
async function stage(store: Store, file: string, content: string): Promise<string> {
  const dir = await store.makeTempDir('stage');
  await fs.writeFile(path.join(dir, file), content);
  return dir;
}

const exists = (p: string) =>
  fs.lstat(p).then(
    () => true,
    () => false,
  );

describe('commitLayer', () => {
  test('the same diffID twice: one layer kept (the first), the second staged dir removed', async () => {
    const store = await openStore();
    const diffId = sha256('layer one');
    const staged1 = await stage(store, 'hello', 'first');
    const chain = await store.commitLayer(staged1, { diffId, size: 1024 });
    expect(chain).toBe(diffId); // chainID(1) = diffID(1)
    expect(await exists(staged1)).toBe(false);
    expect(await fs.readFile(path.join(store.layerDiffDir(chain), 'hello'), 'utf8')).toBe('first');
    expect(await store.readLayerMeta(chain)).toEqual({ diffId, size: 1024, chainId: chain });

    const staged2 = await stage(store, 'hello', 'second');
    expect(await store.commitLayer(staged2, { diffId, size: 1024 })).toBe(chain);
    expect(await exists(staged2)).toBe(false);
    expect(await fs.readFile(path.join(store.layerDiffDir(chain), 'hello'), 'utf8')).toBe('first');
    expect(await ls(store, 'layers')).toEqual([digestHex(chain)]);
    expect(await tmpEntries(store)).toEqual([]);
  });

  test('with a parent: stored under chainID = sha256(parent + " " + diffID)', async () => {
    const store = await openStore();
    const parent = await store.commitLayer(await stage(store, 'a', 'a'), { diffId: sha256('a'), size: 1 });
    const diffId = sha256('b');
    const chain = await store.commitLayer(await stage(store, 'b', 'b'), { diffId, parent, size: 1 });
    expect(chain).toBe(sha256(`${parent} ${diffId}`));
    expect(chain).toBe(chainId(parent, diffId));
    expect(await store.readLayerMeta(chain)).toEqual({ diffId, parent, size: 1, chainId: chain });
    expect((await ls(store, 'layers')).sort()).toEqual([digestHex(parent), digestHex(chain)].sort());
  });

  test('short link l/<first 12 hex> points at ../layers/<hex>/diff, also after a repeated commit', async () => {
    const store = await openStore();
    const diffId = sha256('linked');
    const chain = await store.commitLayer(await stage(store, 'f', 'through the link'), { diffId, size: 1 });
    const id = digestHex(chain).slice(0, 12);
    expect(store.shortLink(chain)).toBe(path.join('l', id));
    const link = path.join(store.root, 'l', id);
    expect(await fs.readlink(link)).toBe(path.join('..', 'layers', digestHex(chain), 'diff'));
    expect(await fs.realpath(link)).toBe(await fs.realpath(store.layerDiffDir(chain)));
    expect(await fs.readFile(path.join(link, 'f'), 'utf8')).toBe('through the link');
    await store.commitLayer(await stage(store, 'f', 'again'), { diffId, size: 1 });
    expect(await ls(store, 'l')).toEqual([id]);
  });

  test('a torn commit (layers/<hex>/ without meta.json) is replaced', async () => {
    const store = await openStore();
    const diffId = sha256('torn');
    await fs.mkdir(path.join(store.layerDir(diffId), 'diff'), { recursive: true });
    await fs.writeFile(path.join(store.layerDir(diffId), 'diff', 'partial'), 'x');
    const chain = await store.commitLayer(await stage(store, 'whole', 'y'), { diffId, size: 1 });
    expect(await fs.readdir(store.layerDiffDir(chain))).toEqual(['whole']);
    expect(await store.hasLayer(chain)).toBe(true);
  });

  test('8 concurrent commits of one diffID: the layer a commit returned is never replaced afterwards', async () => {
    const store = await openStore();
    const diffId = sha256('raced');
    const staged = await Promise.all(Array.from({ length: 8 }, (_, i) => stage(store, `from-${i}`, String(i))));
    const seen: string[][] = [];
    await Promise.all(
      staged.map(async (dir) => {
        const chain = await store.commitLayer(dir, { diffId, size: 1 });
        // What a build that got this result would now mount as a lowerdir.
        seen.push(await fs.readdir(store.layerDiffDir(chain)));
      }),
    );
    const final = await fs.readdir(store.layerDiffDir(diffId));
    expect(final).toHaveLength(1);
    expect(seen).toEqual(Array.from({ length: 8 }, () => final));
    for (const dir of staged) expect(await exists(dir)).toBe(false);
    expect(await tmpEntries(store)).toEqual([]);
    expect(await store.readLayerMeta(diffId)).toEqual({ diffId, size: 1, chainId: diffId });
  });
});

// ---- tags and images ----------------------------------------------------------------------

const emptyState = (env: string[]): ImageState => ({ config: { Env: env }, layers: [], history: [], architecture: 'amd64', os: 'linux' });

async function makeImage(store: Store, tags: string[], env: string[]): Promise<{ imageId: Digest; manifestDigest: Digest }> {
  return commitImage(store, emptyState(env), { tags, now: new Date(0) });
}

async function descriptorOf(store: Store, manifestDigest: Digest): Promise<Descriptor> {
  return { mediaType: MEDIA_TYPE_MANIFEST, digest: manifestDigest, size: (await store.readBlob(manifestDigest)).length };
}

describe('setTags', () => {
  test('10 concurrent calls with different tags: all 10 kept (the lock serializes them)', async () => {
    const store = await openStore();
    const { manifestDigest } = await makeImage(store, [], ['A=1']);
    const desc = await descriptorOf(store, manifestDigest);
    await Promise.all(Array.from({ length: 10 }, (_, i) => store.setTags([`app:${i}`], desc)));
    const tags = await store.listTags();
    expect(tags.map((t) => t.name).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `app:${i}`).sort());
    expect(new Set(tags.map((t) => t.manifest))).toEqual(new Set([manifestDigest]));
    expect(await exists(`${store.indexPath()}.lock`)).toBe(false);
  });

  test('retagging moves the tag: one entry, naming the new manifest; other tags stay', async () => {
    const store = await openStore();
    const one = await makeImage(store, ['app:1', 'app'], ['V=1']);
    const two = await makeImage(store, ['other'], ['V=2']);
    await store.setTags(['docker.io/library/app:1'], await descriptorOf(store, two.manifestDigest));
    expect((await store.listTags()).sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: 'app:1', manifest: two.manifestDigest },
      { name: 'app:latest', manifest: one.manifestDigest },
      { name: 'other:latest', manifest: two.manifestDigest },
    ]);
    expect((await store.findImage('app:1'))?.configDigest).toBe(two.imageId);
  });
});

describe('findImage', () => {
  let store: Store;
  let one: { imageId: Digest; manifestDigest: Digest };
  let two: { imageId: Digest; manifestDigest: Digest };
  beforeAll(async () => {
    store = await openStore();
    one = await makeImage(store, ['app:1', 'app'], ['WHICH=one']);
    two = await makeImage(store, ['localhost:5000/team/svc:2'], ['WHICH=two']);
  });

  type Which = 'one' | 'two' | undefined;
  const rows: [string, (ids: { one: string; two: string; m1: string }) => string, Which][] = [
    ['tag app:1', () => 'app:1', 'one'],
    ['tag app (means app:latest)', () => 'app', 'one'],
    ['tag docker.io/library/app:1 (normalized)', () => 'docker.io/library/app:1', 'one'],
    ['tag with a registry port localhost:5000/team/svc:2', () => 'localhost:5000/team/svc:2', 'two'],
    ['full image ID sha256:<hex>', (i) => i.one, 'one'],
    ['full image ID without sha256:', (i) => i.one.slice(7), 'one'],
    ['12-hex prefix of the image ID', (i) => i.two.slice(7, 19), 'two'],
    ['sha256: + 12-hex prefix', (i) => i.two.slice(0, 19), 'two'],
    ['name@manifest digest', (i) => `app@${i.m1}`, 'one'],
    ['unknown tag app:2', () => 'app:2', undefined],
    ['unknown image ID', () => sha256('no such image'), undefined],
    ['a manifest digest is not an image ID', (i) => i.m1, undefined],
    ['an invalid reference "Not Valid"', () => 'Not Valid', undefined],
  ];

  test.each(rows)('%s', async (_name, ref, which) => {
    const got = await store.findImage(ref({ one: one.imageId, two: two.imageId, m1: one.manifestDigest }));
    const want = which === undefined ? undefined : which === 'one' ? one : two;
    if (want === undefined) {
      expect(got).toBeUndefined();
    } else {
      expect(got).toMatchObject({ configDigest: want.imageId, manifestDigest: want.manifestDigest, layers: [] });
      expect(got!.config.config.Env).toEqual([`WHICH=${which}`]);
    }
  });

  test('getImage of a missing ref: IMAGE_NOT_FOUND naming the ref', async () => {
    await expect(store.getImage('app:2')).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND', message: expect.stringContaining('app:2') });
  });
});
