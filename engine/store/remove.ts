// rmi and image prune with docker's rules (moby's daemon/images/image_delete.go and
// image_prune.go, read for their behaviour): removing a name only untags while other names
// remain; an image named in several places needs force when removed by ID; an image goes
// with the layers and blobs no other image uses, and with the intermediate images it was
// built on that nothing else builds on (docker's untagged parents).
import { digestHex, type Digest } from '../digest.js';
import { UserInputError } from '../errors.js';
import { ANNOTATION_REF_NAME } from '../image/types.js';
import { parseReference } from '../image/reference.js';
import { collectRemoved } from './gc.js';
import { imagesOf, intermediateAncestors, isDangling, noSuchImage, notBuiltOn, resolveRef, type ImageRecord } from './images.js';
import type { Store } from './store.js';

/** One row of docker's report: a reference removed, or an image or layer deleted. */
export type RemovalRow = { untagged: string } | { deleted: Digest };

export class ImageConflictError extends UserInputError {
  constructor(message: string) {
    super('IMAGE_CONFLICT', message);
  }
}

/**
 * `docker rmi INPUT`: a tag or digest reference is removed; the image itself goes when no
 * reference is left. By ID, an image with one tag (or several references in one
 * repository with at most one tag) is untagged and removed; with more, only under `force`.
 */
export async function removeImage(store: Store, input: string, opts: { force?: boolean } = {}): Promise<RemovalRow[]> {
  const rows: RemovalRow[] = [];
  const outcome = await store.updateIndex(async (index) => {
    const images = await imagesOf(store, index);
    const hit = resolveRef(images, input);
    if (!hit) throw noSuchImage(input);
    const { image } = hit;
    let refs = [...image.tags, ...image.digests];
    const untag = (ref: string) => {
      index.manifests = index.manifests.filter((d) => d.annotations?.[ANNOTATION_REF_NAME] !== ref);
      refs = refs.filter((r) => r !== ref);
      rows.push({ untagged: ref });
    };
    if (hit.ref) {
      untag(hit.ref);
      // The last tag of a repository takes that repository's digest references with it.
      const repo = repositoryOf(hit.ref);
      if (!hit.ref.includes('@') && !refs.some((r) => !r.includes('@') && repositoryOf(r) === repo)) {
        for (const r of refs.filter((x) => x.includes('@') && repositoryOf(x) === repo)) untag(r);
      }
      if (refs.length > 0) return undefined;
    } else {
      if (!singleReference(refs) && !opts.force) {
        throw new ImageConflictError(`conflict: unable to delete ${digestHex(image.id).slice(0, 12)} (must be forced) - image is referenced in multiple repositories`);
      }
      for (const r of [...refs]) untag(r);
    }
    let remaining = images.filter((i) => i !== image);
    const removed = [image];
    // Its intermediate images go too, nearest first, up to one another image builds on.
    for (const a of intermediateAncestors(image, remaining)) {
      const others = remaining.filter((i) => i !== a);
      if (notBuiltOn([a], others).length === 0) break;
      remaining = others;
      removed.push(a);
    }
    const gone = new Set(removed.flatMap((i) => i.manifests));
    index.manifests = index.manifests.filter((d) => !gone.has(d.digest));
    return { removed, remaining };
  });
  if (outcome) {
    const collected = await collectRemoved(store, outcome.removed, outcome.remaining);
    for (const c of collected.images) rows.push({ deleted: c.image.id }, ...c.layers.map((l) => ({ deleted: l })));
  }
  return rows;
}

export interface PruneOptions {
  /** Every image, not only dangling ones (strata has no containers, so none is in use). */
  all?: boolean;
  /** docker's prune filters: `until=TIME|DURATION`, `label=K[=V]`, `label!=K[=V]`. */
  filters?: string[];
}

export interface PruneResult {
  rows: RemovalRow[];
  /** Bytes of the layers removed, docker's measure. */
  reclaimed: number;
}

/**
 * `docker image prune [-a]`: removes dangling (or all) images matching the filters, the
 * intermediate images no remaining image builds on, and their layers.
 */
export async function pruneImages(store: Store, opts: PruneOptions = {}, now: Date = new Date()): Promise<PruneResult> {
  const match = pruneFilter(opts.filters ?? [], now);
  const rows: RemovalRow[] = [];
  const plan = await store.updateIndex(async (index) => {
    const images = await imagesOf(store, index);
    const removed = images.filter((i) => (opts.all || isDangling(i)) && match(i));
    // Intermediate images no remaining image builds on: a failed build's, a removed image's.
    const kept = images.filter((i) => !removed.includes(i));
    removed.push(
      ...notBuiltOn(
        kept.filter((i) => i.intermediate && match(i)),
        kept.filter((i) => !i.intermediate),
      ),
    );
    const gone = new Set(removed.flatMap((i) => i.manifests));
    index.manifests = index.manifests.filter((d) => !gone.has(d.digest));
    return { removed, remaining: images.filter((i) => !removed.includes(i)) };
  });
  const collected = await collectRemoved(store, plan.removed, plan.remaining);
  for (const c of collected.images) {
    for (const r of [...c.image.tags, ...c.image.digests]) rows.push({ untagged: r });
    rows.push({ deleted: c.image.id }, ...c.layers.map((l) => ({ deleted: l })));
  }
  return { rows, reclaimed: collected.reclaimed };
}

/** All references in one repository, and at most one of them a tag. */
function singleReference(refs: string[]): boolean {
  const repos = new Set(refs.map(repositoryOf));
  return repos.size <= 1 && refs.filter((r) => !r.includes('@')).length <= 1;
}

function repositoryOf(ref: string): string {
  return parseReference(ref).name;
}

function pruneFilter(filters: string[], now: Date): (i: ImageRecord) => boolean {
  const tests: ((i: ImageRecord) => boolean)[] = [];
  for (const f of filters) {
    const eq = f.indexOf('=');
    if (eq < 0) throw new UserInputError('FILTER_INVALID', `prune: bad format of filter (expected name=value): ${f}`);
    const key = f.slice(0, eq);
    const value = f.slice(eq + 1);
    if (key === 'until') {
      const limit = parseUntil(value, now);
      tests.push((i) => !i.config.created || Date.parse(i.config.created) <= limit);
    } else if (key === 'label') {
      tests.push((i) => labelMatches(i, value));
    } else if (key === 'label!') {
      tests.push((i) => !labelMatches(i, value));
    } else {
      throw new UserInputError('FILTER_INVALID', `prune: invalid filter '${key}'`);
    }
  }
  return (i) => tests.every((t) => t(i));
}

/** `label=KEY` or `label=KEY=VALUE` against the image's labels. */
export function labelMatches(i: ImageRecord, spec: string): boolean {
  const labels = i.config.config?.Labels ?? {};
  const eq = spec.indexOf('=');
  if (eq < 0) return Object.hasOwn(labels, spec);
  return labels[spec.slice(0, eq)] === spec.slice(eq + 1);
}

/** `until`: a Go duration (`24h`, `90m`, `1h30m`) back from now, a Unix time, or an RFC 3339 date. */
export function parseUntil(value: string, now: Date): number {
  const unitMs: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(value)) {
    let ms = 0;
    for (const m of value.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(m[1]) * unitMs[m[2]!]!;
    return now.getTime() - ms;
  }
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new UserInputError('FILTER_INVALID', `prune: invalid until value ${JSON.stringify(value)}: a duration (24h), a Unix time or a date`);
  return t;
}
