// `strata push`: an image from the local store to a registry. The CLI pushes by itself, with
// no workflow: a push reads only the store, and a failure is simply run again (blobs the
// registry already took are skipped). `strata build --push` pushes in the build's workflow.
import { UserInputError } from '../../engine/errors.js';
import type { PushCompression } from '../../engine/registry/compress.js';
import { pushImage } from '../../engine/registry/push.js';
import { recordRepoDigest } from '../../engine/store/images.js';
import { Store } from '../../engine/store/store.js';
import { printPushResult } from '../format.js';

/**
 * Pushes IMAGE (a name or ID in the store) to DEST, or to IMAGE's own name when DEST is absent
 * (podman's form; docker pushes a tag to its own name only).
 */
export async function runPush(image: string, dest: string | undefined, opts: { compression?: string } = {}): Promise<void> {
  const target = dest ?? image;
  if (/^(sha256:)?[0-9a-f]{12,64}$/.test(target))
    throw new UserInputError('PUSH_NO_NAME', `push: ${image} is an image ID; name where it goes: strata push ${image} REGISTRY/REPO:TAG`);
  const store = await Store.open();
  const stored = await store.getImage(image);
  const result = await pushImage(store, stored, target, { compression: parseCompression(opts.compression) });
  await recordRepoDigest(store, stored.manifestDigest, result.reference, result.digest);
  printPushResult(result, (l) => console.log(l));
}

/** `--compression`: how layers strata built are compressed on the way (gzip by default). */
export function parseCompression(text: string | undefined): PushCompression {
  if (text === undefined || text === 'gzip') return 'gzip';
  if (text === 'zstd') return 'zstd';
  throw new UserInputError('COMPRESSION_INVALID', `--compression ${text}: gzip or zstd`);
}
