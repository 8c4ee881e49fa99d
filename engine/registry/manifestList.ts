// Manifest lists as `docker manifest` makes them: a local list (create, annotate, inspect),
// then pushed as one index whose entries name each image's manifest and platform.
// Members are images in the store (pushed into the list's repository by digest when the
// list is pushed) or images in the list's registry (their blobs mounted into the list's
// repository when it is another one). Local lists live in $STRATA_HOME/manifests/.
//
// The index is a docker manifest list when every member's manifest is docker's (so docker
// and older tools read it as they made it), else an OCI image index: strata's own images
// push as OCI manifests, so OCI is what strata writes by default.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { digestHex, sha256, type Digest } from '../digest.js';
import { RegistryError, UserInputError } from '../errors.js';
import { writeFileAtomic } from '../fsutil/atomic.js';
import { formatPlatform, type Platform } from '../image/platform.js';
import { normalizeReference } from '../image/reference.js';
import { MEDIA_TYPE_INDEX, type Descriptor, type ImageConfigFile, type ImageIndex } from '../image/types.js';
import type { Store } from '../store/store.js';
import { findCredentials } from './auth.js';
import { RegistryClient } from './client.js';
import { DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, MANIFEST_ACCEPT, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, parseManifest } from './manifest.js';
import { pushImage, type PushOptions } from './push.js';
import { registryReference } from './reference.js';

export interface ListMember {
  /** The reference as given to `create`. */
  ref: string;
  /** `local`: an image in the store, pushed with the list; `remote`: a manifest in the list's registry. */
  source: 'local' | 'remote';
  /** The local manifest (local), or the registry's (remote). */
  descriptor: Descriptor;
  platform: Platform;
}

export interface ManifestList {
  name: string;
  members: ListMember[];
}

export interface ListOptions {
  dockerConfig?: string;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

function listPath(store: Store, name: string): string {
  return path.join(store.root, 'manifests', `${digestHex(sha256(name))}.json`);
}

/** The local list `name`, or undefined. */
export async function readList(store: Store, name: string): Promise<ManifestList | undefined> {
  try {
    return JSON.parse(await fs.readFile(listPath(store, normalizeReference(name)), 'utf8')) as ManifestList;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function writeList(store: Store, list: ManifestList): Promise<void> {
  const file = listPath(store, list.name);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, JSON.stringify(list, null, 1));
}

/**
 * Makes (or with `amend`, extends) the local list `name` from `refs`: images in the store
 * first, else manifests in a registry (the list's own). One entry per platform; a later
 * member replaces an earlier one of the same platform, as docker's --amend does.
 */
export async function createList(store: Store, name: string, refs: string[], opts: ListOptions & { amend?: boolean } = {}): Promise<ManifestList> {
  const listName = normalizeReference(name);
  const existing = await readList(store, listName);
  if (existing && !opts.amend) throw new UserInputError('MANIFEST_LIST_EXISTS', `manifest create: ${listName} exists; add --amend to change it`);
  const members = existing?.members ?? [];
  const listRegistry = registryReference(name, opts.env).registry;
  for (const ref of refs) {
    const member = await describeMember(store, ref, listRegistry, opts);
    const same = members.findIndex((m) => formatPlatform(m.platform) === formatPlatform(member.platform) || m.ref === member.ref);
    if (same >= 0) members[same] = member;
    else members.push(member);
  }
  const list = { name: listName, members };
  await writeList(store, list);
  return list;
}

async function describeMember(store: Store, ref: string, listRegistry: string, opts: ListOptions): Promise<ListMember> {
  const local = await store.findImage(ref).catch(() => undefined);
  if (local) {
    const bytes = await store.readBlob(local.manifestDigest);
    return {
      ref,
      source: 'local',
      descriptor: { mediaType: local.manifest.mediaType, digest: local.manifestDigest, size: bytes.length },
      platform: platformOf(local.config),
    };
  }
  const target = registryReference(ref, opts.env);
  const what = `manifest create: ${ref}`;
  if (target.registry !== listRegistry) {
    throw new UserInputError('MANIFEST_MEMBER_ELSEWHERE', `${what}: not in the local store, and in registry ${target.registry}, not the list's (${listRegistry})`);
  }
  const client = new RegistryClient(target, what, { credentials: await findCredentials(target.registry, opts.dockerConfig), signal: opts.signal, actions: 'pull' });
  const { bytes, mediaType } = await client.getManifest(target.reference, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES);
  const parsed = parseManifest(bytes, mediaType, what);
  if (parsed.kind !== 'image') throw new UserInputError('MANIFEST_MEMBER_IS_LIST', `${what}: is a manifest list; a list's members are images`);
  const configBytes = await client.getBlobBytes(parsed.manifest.config.digest, MAX_CONFIG_BYTES);
  if (sha256(configBytes) !== parsed.manifest.config.digest) throw new RegistryError(`${what}: config arrived with another digest`, { permanent: true });
  return {
    ref,
    source: 'remote',
    descriptor: { mediaType: parsed.mediaType, digest: sha256(bytes), size: bytes.length },
    platform: platformOf(JSON.parse(configBytes.toString('utf8')) as ImageConfigFile),
  };
}

function platformOf(config: ImageConfigFile): Platform {
  return { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
}

/** Sets a member's platform fields (`docker manifest annotate`). */
export async function annotateList(store: Store, name: string, ref: string, changes: Partial<Platform>): Promise<ManifestList> {
  const list = await readList(store, name);
  if (!list) throw new UserInputError('MANIFEST_LIST_NOT_FOUND', `manifest annotate: no local list ${name} (strata manifest create makes one)`);
  const member = list.members.find((m) => m.ref === ref || safeNormalize(m.ref) === safeNormalize(ref));
  if (!member) throw new UserInputError('MANIFEST_MEMBER_NOT_FOUND', `manifest annotate: ${ref} is not in list ${list.name}`);
  for (const [k, v] of Object.entries(changes))
    if (v !== undefined && !/^[\w.-]+$/.test(v)) throw new UserInputError('PLATFORM_INVALID', `manifest annotate: invalid ${k} ${JSON.stringify(v)}`);
  member.platform = { ...member.platform, ...Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined)) };
  if (member.platform.variant === '') delete member.platform.variant;
  await writeList(store, list);
  return list;
}

function safeNormalize(ref: string): string {
  try {
    return normalizeReference(ref);
  } catch {
    return ref;
  }
}

export async function removeList(store: Store, name: string): Promise<boolean> {
  const file = listPath(store, normalizeReference(name));
  return fs.rm(file).then(
    () => true,
    () => false,
  );
}

/** The index a list would be pushed as (local members listed with their local digests). */
export function indexOf(members: { descriptor: Descriptor; platform: Platform }[]): ImageIndex {
  const docker = members.length > 0 && members.every((m) => m.descriptor.mediaType === DOCKER_MANIFEST);
  return {
    schemaVersion: 2,
    mediaType: docker ? DOCKER_MANIFEST_LIST : MEDIA_TYPE_INDEX,
    manifests: members.map((m) => ({ mediaType: m.descriptor.mediaType, digest: m.descriptor.digest, size: m.descriptor.size, platform: m.platform })),
  };
}

/** A manifest or index as the registry serves it (`docker manifest inspect REF`). */
export async function inspectRemote(ref: string, opts: ListOptions = {}): Promise<Buffer> {
  const target = registryReference(ref, opts.env);
  const what = `manifest inspect ${ref}`;
  const client = new RegistryClient(target, what, { credentials: await findCredentials(target.registry, opts.dockerConfig), signal: opts.signal, actions: 'pull' });
  const { bytes, mediaType } = await client.getManifest(target.reference, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES);
  parseManifest(bytes, mediaType, what);
  return bytes;
}

/**
 * Pushes list `name` to `dest` (default: its own name): each local member's image by
 * digest into the list's repository, each remote member's blobs mounted there (when it
 * lives in another repository), then the index under the tag. Returns its digest.
 */
export async function pushList(
  store: Store,
  name: string,
  dest: string | undefined,
  opts: ListOptions & Pick<PushOptions, 'compression' | 'onProgress'> = {},
): Promise<{ digest: Digest; size: number; index: ImageIndex }> {
  const list = await readList(store, name);
  if (!list) throw new UserInputError('MANIFEST_LIST_NOT_FOUND', `manifest push: no local list ${name} (strata manifest create makes one)`);
  if (list.members.length === 0) throw new UserInputError('MANIFEST_LIST_EMPTY', `manifest push: list ${list.name} has no members`);
  const target = dest ?? name;
  const ref = registryReference(target, opts.env);
  const what = `manifest push ${target}`;
  const credentials = await findCredentials(ref.registry, opts.dockerConfig);
  const pushed: { descriptor: Descriptor; platform: Platform }[] = [];
  for (const m of list.members) {
    if (m.source === 'local') {
      const image = await store.loadImage(m.descriptor.digest);
      const r = await pushImage(store, image, target, { ...opts, byDigest: true });
      pushed.push({ descriptor: { mediaType: r.mediaType, digest: r.digest, size: r.size }, platform: m.platform });
      continue;
    }
    const from = registryReference(m.ref, opts.env);
    if (from.registry !== ref.registry) throw new UserInputError('MANIFEST_MEMBER_ELSEWHERE', `${what}: member ${m.ref} is in registry ${from.registry}, not ${ref.registry}`);
    if (from.repository !== ref.repository) await copyWithinRegistry(from.repository, m.descriptor, ref, what, credentials, opts);
    pushed.push({ descriptor: m.descriptor, platform: m.platform });
  }
  const index = indexOf(pushed);
  const bytes = Buffer.from(JSON.stringify(index));
  const client = new RegistryClient(ref, what, { credentials, signal: opts.signal, actions: 'pull,push' });
  const answered = await client.putManifest(ref.reference, index.mediaType!, bytes);
  const digest = sha256(bytes);
  if (answered && answered !== digest) throw new RegistryError(`${what}: registry ${ref.registry} stored the index as ${answered}, not ${digest}`);
  return { digest, size: bytes.length, index };
}

/** Mounts a member's blobs from its repository into the list's, then puts its manifest there by digest. */
async function copyWithinRegistry(
  fromRepo: string,
  d: Descriptor,
  ref: ReturnType<typeof registryReference>,
  what: string,
  credentials: Awaited<ReturnType<typeof findCredentials>>,
  opts: ListOptions,
): Promise<void> {
  const source = new RegistryClient({ ...ref, repository: fromRepo }, what, { credentials, signal: opts.signal, actions: 'pull' });
  const { bytes, mediaType } = await source.getManifest(d.digest, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES);
  if (sha256(bytes) !== d.digest) throw new RegistryError(`${what}: manifest ${d.digest} in ${fromRepo} changed`, { permanent: true });
  const parsed = parseManifest(bytes, mediaType, what);
  if (parsed.kind !== 'image') throw new UserInputError('MANIFEST_MEMBER_IS_LIST', `${what}: ${fromRepo}@${d.digest} is a list`);
  const client = new RegistryClient(ref, what, { credentials, signal: opts.signal, actions: 'pull,push', mountFrom: [fromRepo] });
  for (const blob of [parsed.manifest.config, ...parsed.manifest.layers]) {
    if (await client.hasBlob(blob.digest)) continue;
    if (!(await client.mountBlob(blob.digest, fromRepo)))
      throw new RegistryError(`${what}: registry ${ref.registry} would not mount ${blob.digest} from ${fromRepo}`, { permanent: true });
  }
  await client.putManifest(d.digest, parsed.mediaType, bytes);
}
