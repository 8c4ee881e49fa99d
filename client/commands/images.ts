// `strata images [REPO[:TAG]]`: the store's images as `docker images` lists them — one row
// per tag (untagged images as `<none> <none>`), newest first, docker's columns, filters and
// --format. Intermediate images (a build's image after each step) show only with -a.
import { digestHex, type Digest } from '../../engine/digest.js';
import { isDangling, listImages, resolveRef, type ImageRecord, createdMs } from '../../engine/store/images.js';
import { labelMatches } from '../../engine/store/remove.js';
import type { Store } from '../../engine/store/store.js';
import { layerUsage } from '../../engine/store/usage.js';
import { patternToRegExp } from '../../engine/steps/wildcard.js';
import { UsageError } from '../errors.js';
import { formatRows, goJson, type Row } from '../template.js';
import { goTimeString, humanSize, since } from '../units.js';

export interface ImagesOptions {
  all?: boolean;
  quiet?: boolean;
  digests?: boolean;
  noTrunc?: boolean;
  filter?: string[];
  format?: string;
}

const HEADERS = {
  ID: 'IMAGE ID',
  Repository: 'REPOSITORY',
  Tag: 'TAG',
  Digest: 'DIGEST',
  CreatedSince: 'CREATED',
  CreatedAt: 'CREATED AT',
  Size: 'SIZE',
  Containers: 'CONTAINERS',
  VirtualSize: 'SIZE',
  SharedSize: 'SHARED SIZE',
  UniqueSize: 'UNIQUE SIZE',
};

/** Prints the image list; `repo` is docker's positional REPOSITORY[:TAG] (a reference filter). */
export async function runImages(store: Store, repo: string | undefined, opts: ImagesOptions, out: (s: string) => void = (s) => process.stdout.write(s)): Promise<void> {
  const images = await listImages(store);
  const filters = parseFilters([...(opts.filter ?? []), ...(repo ? [`reference=${repo}`] : [])]);
  const rows: Row[] = [];
  const needDigest = !!opts.digests || (opts.format ?? '').includes('{{.Digest}}');
  for (const image of images) {
    if (image.intermediate && !opts.all) continue;
    const shown = selectImage(image, images, filters);
    if (!shown) continue;
    const size = await imageSize(store, image.chain);
    for (const { repository, tag, digest } of rowsOf(shown, needDigest, !!opts.digests)) {
      rows.push(imageRow(image, { repository, tag, digest }, size, !opts.noTrunc));
    }
  }
  let format = opts.format;
  if (opts.quiet) format = '{{.ID}}';
  else if (format === undefined || format.trim() === 'table') {
    format = `table {{.Repository}}\t{{.Tag}}\t${opts.digests ? '{{.Digest}}\t' : ''}{{.ID}}\t{{.CreatedSince}}\t{{.Size}}`;
    for (const r of rows) if (r.CreatedSince === '') r.CreatedSince = 'N/A';
  } else if (format.trim().startsWith('table') && opts.digests && !format.includes('{{.Digest}}')) {
    format += '\t{{.Digest}}';
  }
  out(formatRows(format, rows, { defaultRow: '', headers: HEADERS }));
}

/** The sum of the docker-style sizes of an image's layers. */
export async function imageSize(store: Store, chain: Digest[]): Promise<number> {
  let n = 0;
  for (const c of chain) n += await layerUsage(store, c).catch(() => 0);
  return n;
}

/** One image's row fields, named as docker's --format names them. */
export function imageRow(image: ImageRecord, names: { repository: string; tag: string; digest: string }, size: number, trunc: boolean): Row {
  const created = image.config.created ? Date.parse(image.config.created) : NaN;
  return {
    Containers: 'N/A',
    CreatedAt: Number.isNaN(created) ? '0001-01-01 00:00:00 +0000 UTC' : goTimeString(created),
    CreatedSince: Number.isNaN(created) ? '' : since(created),
    Digest: names.digest,
    ID: trunc ? digestHex(image.id).slice(0, 12) : image.id,
    Repository: names.repository,
    SharedSize: 'N/A',
    Size: humanSize(size, 3),
    Tag: names.tag,
    UniqueSize: 'N/A',
    VirtualSize: humanSize(size),
  };
}

/** What docker shows of an image's references: a row per tag, per digest when asked. */
function rowsOf(refs: { tags: string[]; digests: string[] }, needDigest: boolean, digestRows: boolean): { repository: string; tag: string; digest: string }[] {
  if (refs.tags.length === 0 && refs.digests.length === 0) return [{ repository: '<none>', tag: '<none>', digest: '<none>' }];
  const out: { repository: string; tag: string; digest: string }[] = [];
  const repoOf = (r: string, sep: string) => r.slice(0, r.lastIndexOf(sep));
  const digestsByRepo = new Map<string, string[]>();
  for (const d of refs.digests) {
    const repo = repoOf(d, '@');
    digestsByRepo.set(repo, [...(digestsByRepo.get(repo) ?? []), d.slice(d.lastIndexOf('@') + 1)]);
  }
  for (const t of refs.tags) {
    const repo = repoOf(t, ':');
    const tag = t.slice(t.lastIndexOf(':') + 1);
    const digests = needDigest ? (digestsByRepo.get(repo) ?? []) : [];
    if (digests.length === 0) out.push({ repository: repo, tag, digest: '<none>' });
    for (const d of digests) out.push({ repository: repo, tag, digest: d });
  }
  const tagged = new Set(refs.tags.map((t) => repoOf(t, ':')));
  for (const [repo, digests] of digestsByRepo) {
    if (tagged.has(repo)) continue;
    if (digestRows) for (const d of digests) out.push({ repository: repo, tag: '<none>', digest: d });
    else out.push({ repository: repo, tag: '<none>', digest: '' });
  }
  return out;
}

interface Filters {
  dangling?: boolean;
  labels: string[];
  before?: string;
  since?: string;
  references: RegExp[];
}

function parseFilters(specs: string[]): Filters {
  const f: Filters = { labels: [], references: [] };
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    if (eq < 0) throw new UsageError(`images: bad format of filter (expected name=value): ${spec}`);
    const key = spec.slice(0, eq).toLowerCase();
    const value = spec.slice(eq + 1);
    switch (key) {
      case 'dangling':
        if (!/^(true|false|1|0)$/i.test(value)) throw new UsageError(`images: invalid filter 'dangling=${value}'`);
        f.dangling = /^(true|1)$/i.test(value);
        break;
      case 'label':
        f.labels.push(value);
        break;
      case 'before':
        f.before = value;
        break;
      case 'since':
        f.since = value;
        break;
      case 'reference':
        f.references.push(globRegExp(value));
        break;
      default:
        throw new UsageError(`images: invalid filter '${key}'`);
    }
  }
  return f;
}

/** The references of `image` that pass the filters; undefined when the image is not shown. */
function selectImage(image: ImageRecord, all: ImageRecord[], f: Filters): { tags: string[]; digests: string[] } | undefined {
  if (f.dangling !== undefined && isDangling(image) !== f.dangling) return undefined;
  if (!f.labels.every((l) => labelMatches(image, l))) return undefined;
  const at = (ref: string) => {
    const hit = resolveRef(all, ref);
    if (!hit) throw new UsageError(`images: No such image: ${ref}`);
    return createdMs(hit.image);
  };
  if (f.before !== undefined && !(createdMs(image) < at(f.before))) return undefined;
  if (f.since !== undefined && !(createdMs(image) > at(f.since))) return undefined;
  if (f.references.length === 0) return { tags: image.tags, digests: image.digests };
  const matches = (ref: string) => {
    const at = ref.indexOf('@');
    const name = at >= 0 ? ref.slice(0, at) : ref.slice(0, ref.lastIndexOf(':'));
    return f.references.some((re) => re.test(name) || re.test(ref));
  };
  const tags = image.tags.filter(matches);
  const digests = image.digests.filter(matches);
  // Untagged images never match a reference filter (docker skips them).
  return tags.length + digests.length > 0 ? { tags, digests } : undefined;
}

/** Go's path.Match pattern as a RegExp (COPY's wildcards are the same language). */
export function globRegExp(pattern: string): RegExp {
  try {
    return patternToRegExp(pattern);
  } catch {
    throw new UsageError(`images: invalid reference pattern ${goJson(pattern)}`);
  }
}
