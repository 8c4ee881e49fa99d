// export: an image's filesystem flattened into one tar, as `docker export` of a container
// made from it gives (without the files docker's container init layer adds: /.dockerenv,
// /etc/hostname, /etc/hosts, /etc/resolv.conf, /dev/console, /dev/pts, /dev/shm, /proc,
// /sys). The layers are stacked by overlayfs itself (a read-only mount of the chain, which
// applies whiteouts and opaque directories) and the merged view is written by the layer
// tar writer: hardlinks stay hardlinks, modes, owners, times and xattrs are kept.
import { promises as fs } from 'node:fs';
import type { Writable } from 'node:stream';
import { writeLayerTar } from '../layer/tar.js';
import { mountReadOnly } from '../runtime/overlay.js';
import type { Store } from '../store/store.js';
import type { StoredImage } from '../image/types.js';

/** Streams the flattened filesystem of `image` into `out` (ended on success, destroyed on failure). */
export async function exportImage(store: Store, image: StoredImage, out: Writable): Promise<{ size: number }> {
  const staging = await store.makeTempDir('export');
  try {
    // No layers (FROM scratch and nothing else): an empty filesystem, no mount needed.
    if (image.layers.length === 0) return await writeLayerTar(staging, out);
    const ro = await mountReadOnly(
      store,
      image.layers.map((l) => l.chainId),
      staging,
    );
    try {
      return await writeLayerTar(ro.root, out);
    } finally {
      await ro.unmount();
    }
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
}
