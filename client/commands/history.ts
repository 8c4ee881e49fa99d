// `strata history IMAGE`: one row per history entry, newest first, as docker history shows
// it. docker names a row's image by walking the parent images its classic builder made;
// strata records no parents, so a row shows the ID of an image in the store whose history
// and layers are exactly the image's up to that row (the image itself on the top row, the
// intermediate image of each step strata built, the base it was built FROM while that base
// is in the store) and `<missing>` elsewhere — what docker shows for images it did not build.
import { digestHex, type Digest } from '../../engine/digest.js';
import type { HistoryEntry } from '../../engine/image/types.js';
import { listImages, resolveRef, noSuchImage, type ImageRecord } from '../../engine/store/images.js';
import type { Store } from '../../engine/store/store.js';
import { layerUsage } from '../../engine/store/usage.js';
import { formatRows, type Row } from '../template.js';
import { humanSize, rfc3339, since } from '../units.js';

export interface HistoryOptions {
  /** -H: human sizes and ages (default true). */
  human?: boolean;
  noTrunc?: boolean;
  quiet?: boolean;
  format?: string;
}

const HEADERS = { ID: 'IMAGE', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', CreatedBy: 'CREATED BY', Size: 'SIZE', Comment: 'COMMENT' };

export async function runHistory(store: Store, ref: string, opts: HistoryOptions, out: (s: string) => void = (s) => process.stdout.write(s)): Promise<void> {
  const images = await listImages(store);
  const hit = resolveRef(images, ref);
  if (!hit) throw noSuchImage(ref);
  const image = hit.image;
  const human = opts.human ?? true;
  const trunc = !opts.noTrunc;
  const history = image.config.history ?? [];
  const rows: Row[] = [];
  let layer = 0;
  const sizes: number[] = [];
  for (const h of history) {
    if (h.empty_layer) sizes.push(0);
    else {
      const chain = image.chain[layer++];
      sizes.push(chain ? await layerUsage(store, chain).catch(() => 0) : 0);
    }
  }
  for (let i = history.length - 1; i >= 0; i--) {
    const h = history[i]!;
    const id = i === history.length - 1 ? image.id : imageAtRow(image, i, images);
    const created = h.created ? Date.parse(h.created) : 0;
    const createdBy = (h.created_by ?? '').replaceAll('\t', ' ');
    rows.push({
      Comment: h.comment ?? '',
      CreatedAt: rfc3339(created),
      CreatedBy: trunc ? ellipsis(createdBy, 45) : createdBy,
      CreatedSince: human ? since(created) : rfc3339(created),
      ID: id ? (trunc ? digestHex(id).slice(0, 12) : id) : '<missing>',
      Size: human ? humanSize(sizes[i]!, 3) : String(sizes[i]),
    });
  }
  let format = opts.format;
  if (opts.quiet) format = '{{.ID}}';
  else if (format === undefined || format.trim() === 'table') {
    format = `table {{.ID}}\t${human ? '{{.CreatedSince}}' : '{{.CreatedAt}}'}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}`;
  }
  out(formatRows(format, rows, { defaultRow: '', headers: HEADERS }));
}

/** An image in the store whose history is `image`'s first `row`+1 entries, with the same layers. */
function imageAtRow(image: ImageRecord, row: number, images: ImageRecord[]): Digest | undefined {
  const history = image.config.history ?? [];
  const layers = history.slice(0, row + 1).filter((h) => !h.empty_layer).length;
  for (const other of images) {
    const h = other.config.history ?? [];
    if (other === image || h.length !== row + 1 || other.chain.length !== layers) continue;
    if (other.chain[layers - 1] !== image.chain[layers - 1]) continue;
    if (h.every((e, i) => sameEntry(e, history[i]!))) return other.id;
  }
  return undefined;
}

/** A base's rows as a derived image carries them: strata may fill in a missing comment. */
function sameEntry(a: HistoryEntry, b: HistoryEntry): boolean {
  return a.created === b.created && (a.created_by ?? '') === (b.created_by ?? '') && !!a.empty_layer === !!b.empty_layer;
}

/** docker's Ellipsis for plain text: at most `max` characters, the last one `…` when cut. */
export function ellipsis(s: string, max: number): string {
  const chars = [...s];
  return chars.length <= max ? s : `${chars.slice(0, max - 1).join('')}…`;
}
