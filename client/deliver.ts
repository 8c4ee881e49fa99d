// What `strata build` delivers itself once its build succeeds: `--output` files and `--push`.
// The CLI acts for the user who ran it, with that user's files and registry credentials; a
// worker acts for anyone who reaches Temporal, so it writes and pushes only what its operator
// allowed (worker/rights.ts). A build left waiting for a retry keeps its delivery in the store
// (beside its secrets, removed with them when a client sees the build end), so `strata retry`
// or `strata attach` delivers it when the build succeeds.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { PushProgress } from '../engine/registry/push.js';
import { buildSecretsDir } from '../engine/store/secrets.js';
import { Store } from '../engine/store/store.js';
import { remoteFromEnv } from '../engine/remote/remoteStore.js';
import { MEDIA_TYPE_MANIFEST } from '../engine/image/types.js';
import type { BuildResult } from '../workflows/types.js';
import { formatSize, printPushResult } from './format.js';

export interface Delivery {
  /** Absolute paths of the tars to write. */
  outputs: string[];
  /** Tags to push. */
  push: string[];
  /**
   * `--cache-to`'s repository: exported when the build succeeds, by whichever client sees it
   * (build, or retry/attach for a build that waited), after the delivery (followBuild).
   */
  cacheTo?: string;
}

function deliveryFile(root: string, buildId: string): string {
  return path.join(buildSecretsDir(root, buildId), 'delivery.json');
}

/** Keeps what to deliver when `buildId` succeeds (nothing is written for an empty delivery). */
export async function recordDelivery(root: string, buildId: string, d: Delivery): Promise<void> {
  if (d.outputs.length === 0 && d.push.length === 0 && !d.cacheTo) return;
  const dir = buildSecretsDir(root, buildId);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  await fs.writeFile(deliveryFile(root, buildId), JSON.stringify(d), { mode: 0o600 });
}

/**
 * Saves and pushes what was recorded for the build, printing as `strata save` and
 * `strata push` do, then forgets it and returns the recorded `--cache-to` repository, which
 * the caller exports. Throws (the build's client then fails) on the first error.
 */
export async function deliverBuild(
  root: string,
  buildId: string,
  result: BuildResult,
  out: (line: string) => void,
  onPushProgress?: (p: PushProgress) => void,
): Promise<{ cacheTo?: string }> {
  let d: Delivery;
  try {
    d = JSON.parse(await fs.readFile(deliveryFile(root, buildId), 'utf8')) as Delivery;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  const cacheTo = typeof d.cacheTo === 'string' ? d.cacheTo : undefined;
  if (d.outputs.length === 0 && d.push.length === 0) {
    await fs.rm(deliveryFile(root, buildId), { force: true });
    return { cacheTo };
  }
  // Loaded only for a build that delivers: every other build's client is spared their imports.
  const [{ saveImages }, { pushImage }] = await Promise.all([import('../engine/archive/save.js'), import('../engine/registry/push.js')]);
  const store = await Store.open(root);
  const image = await store.loadImage(result.manifestDigest);
  for (const dest of d.outputs) {
    const { size } = await saveImages(store, [{ image, tags: result.tags }], dest);
    out(`Saved image to ${dest} (${formatSize(size)})`);
  }
  for (const tag of d.push) printPushResult(await pushImage(store, image, tag, { onProgress: onPushProgress }), out);
  await fs.rm(deliveryFile(root, buildId), { force: true });
  return { cacheTo };
}

/** With a remote store (STRATA_REMOTE) the image was made on other machines: it comes into this client's store, tags and all. */
export async function fetchRemoteImage(root: string, r: BuildResult): Promise<void> {
  const remote = remoteFromEnv();
  if (!remote) return;
  const store = await Store.open(root);
  await remote.getImage(store, r.manifestDigest);
  await store.setTags(r.tags, { mediaType: MEDIA_TYPE_MANIFEST, digest: r.manifestDigest, size: (await store.readBlob(r.manifestDigest)).length });
}
