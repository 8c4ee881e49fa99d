// `strata manifest create|annotate|inspect|push|rm`: docker's manifest-list commands. Lists
// are kept in the store until pushed; members are images in the store or in the registry.
import { UserInputError } from '../../engine/errors.js';
import { annotateList, createList, indexOf, inspectRemote, pushList, readList, removeList } from '../../engine/registry/manifestList.js';
import type { Store } from '../../engine/store/store.js';
import { parseCompression } from './push.js';

type Out = (line: string) => void;
const print: Out = (l) => console.log(l);

export async function runManifestCreate(store: Store, list: string, images: string[], opts: { amend?: boolean }, out: Out = print): Promise<void> {
  const made = await createList(store, list, images, opts);
  out(`Created manifest list ${made.name}`);
}

export async function runManifestAnnotate(store: Store, list: string, image: string, opts: { os?: string; arch?: string; variant?: string }, out: Out = print): Promise<void> {
  if (opts.os === undefined && opts.arch === undefined && opts.variant === undefined)
    throw new UserInputError('MANIFEST_USAGE', 'manifest annotate: give --os, --arch or --variant');
  await annotateList(store, list, image, { os: opts.os, architecture: opts.arch, variant: opts.variant });
  out(`Annotated ${image} in ${list}`);
}

/** A local list as the index it would push, or else the manifest the registry serves. */
export async function runManifestInspect(store: Store, ref: string, out: Out = print): Promise<void> {
  const local = await readList(store, ref).catch(() => undefined);
  if (local) return out(JSON.stringify(indexOf(local.members), null, 3));
  const bytes = await inspectRemote(ref);
  out(JSON.stringify(JSON.parse(bytes.toString('utf8')), null, 3));
}

export async function runManifestPush(store: Store, list: string, dest: string | undefined, opts: { purge?: boolean; compression?: string }, out: Out = print): Promise<void> {
  const compression = parseCompression(opts.compression);
  const r = await pushList(store, list, dest, { compression });
  if (opts.purge) await removeList(store, list);
  out(r.digest);
}

export async function runManifestRm(store: Store, lists: string[], out: Out = print): Promise<void> {
  for (const l of lists) {
    if (!(await removeList(store, l))) throw new UserInputError('MANIFEST_LIST_NOT_FOUND', `manifest rm: no local list ${l}`);
    out(`Deleted ${l}`);
  }
}
