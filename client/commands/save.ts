// `strata save IMAGE… [-o FILE] [--exclude-base IMAGE]`: images as one archive that docker
// (old and new), podman and skopeo read; to stdout without -o, never to a terminal.
import path from 'node:path';
import { saveImages, writeImageArchive, type SaveItem } from '../../engine/archive/save.js';
import type { Digest } from '../../engine/digest.js';
import { parseReference, normalizeReference } from '../../engine/image/reference.js';
import { listImages, noSuchImage, resolveRef } from '../../engine/store/images.js';
import type { Store } from '../../engine/store/store.js';
import { UsageError } from '../errors.js';
import { formatSize } from '../format.js';

export interface SaveCliOptions {
  output?: string;
  excludeBase?: string[];
}

/**
 * What each argument saves, as docker: a tag saves that tag; a repository name without a
 * tag saves every tag of it (`:latest` when it has none); an ID saves the image untagged.
 */
export async function saveItems(store: Store, refs: string[]): Promise<SaveItem[]> {
  const images = await listImages(store);
  const items: SaveItem[] = [];
  for (const ref of refs) {
    const explicitTag = /:[^/]*$/.test(ref) || ref.includes('@');
    let repoTags: string[] = [];
    if (!explicitTag && !/^(sha256:)?[0-9a-f]{64}$/.test(ref)) {
      try {
        const repo = parseReference(ref).name;
        repoTags = images.flatMap((i) => i.tags).filter((t) => parseReference(t).name === repo);
      } catch {
        repoTags = [];
      }
    }
    if (repoTags.length > 0) {
      for (const tag of repoTags) items.push({ image: await store.getImage(tag), tags: [tag] });
      continue;
    }
    const hit = resolveRef(images, ref);
    if (!hit) throw noSuchImage(ref);
    const image = await store.loadImage(hit.image.manifests[0]!);
    items.push({ image, tags: hit.ref && !hit.ref.includes('@') ? [normalizeReference(hit.ref)] : [] });
  }
  return items;
}

export async function runSave(store: Store, refs: string[], opts: SaveCliOptions): Promise<void> {
  const items = await saveItems(store, refs);
  const exclude = new Set<Digest>();
  for (const base of opts.excludeBase ?? []) for (const l of (await store.getImage(base)).layers) exclude.add(l.chainId);
  if (opts.output) {
    const { size } = await saveImages(store, items, path.resolve(opts.output), { exclude });
    console.error(`Saved ${refs.join(', ')} to ${opts.output} (${formatSize(size)})`);
    return;
  }
  if (process.stdout.isTTY) throw new UsageError('cowardly refusing to save to a terminal. Use the -o flag or redirect');
  await writeImageArchive(store, items, process.stdout, { exclude });
}
