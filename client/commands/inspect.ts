// `strata inspect IMAGE…`: the JSON `docker image inspect` prints, from the store's records.
// Fields strata has no value for are left out (GraphDriver, the legacy Container and
// ContainerConfig); Parent is empty, as for every image docker loads or pulls.
import type { ContainerConfig } from '../../engine/image/types.js';
import { listImages, noSuchImage, resolveRef, type ImageRecord } from '../../engine/store/images.js';
import type { Store } from '../../engine/store/store.js';
import { EngineError } from '../../engine/errors.js';
import { formatRows, goJson } from '../template.js';
import { imageSize } from './images.js';

/** Prints the images' JSON (or `--format` per image); returns the exit code (1 if one was missing). */
export async function runInspect(store: Store, refs: string[], opts: { format?: string }): Promise<number> {
  const images = await listImages(store);
  const found: Record<string, unknown>[] = [];
  let failed = false;
  for (const ref of refs) {
    try {
      const hit = resolveRef(images, ref);
      if (!hit) throw noSuchImage(ref);
      found.push(await inspectImage(store, hit.image));
    } catch (err) {
      if (!(err instanceof EngineError && err.userError)) throw err;
      console.error(`Error: ${err.message}`);
      failed = true;
    }
  }
  if (opts.format) process.stdout.write(formatRows(opts.format, found, { defaultRow: '', headers: {} }));
  else console.log(indentJson(found));
  return failed ? 1 : 0;
}

/** One image as docker's ImageInspect shows it. */
export async function inspectImage(store: Store, image: ImageRecord): Promise<Record<string, unknown>> {
  const c = image.config;
  return {
    Id: image.id,
    RepoTags: image.tags,
    RepoDigests: image.digests,
    Parent: '',
    Comment: (c as { comment?: string }).comment ?? '',
    Created: c.created ?? '0001-01-01T00:00:00Z',
    DockerVersion: (c as { docker_version?: string }).docker_version ?? '',
    Author: c.author ?? '',
    Config: dockerConfig(c.config ?? {}),
    Architecture: c.architecture,
    ...(c.variant ? { Variant: c.variant } : {}),
    Os: c.os,
    Size: await imageSize(store, image.chain),
    RootFS: { Type: 'layers', Layers: c.rootfs?.diff_ids ?? [] },
    Metadata: { LastTagTime: image.lastTagTime ?? '0001-01-01T00:00:00Z' },
  };
}

/** The image config's `config` in the shape (and key order) of docker's container.Config. */
export function dockerConfig(cfg: ContainerConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {
    Hostname: '',
    Domainname: '',
    User: cfg.User ?? '',
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
  };
  if (cfg.ExposedPorts && Object.keys(cfg.ExposedPorts).length) out.ExposedPorts = cfg.ExposedPorts;
  Object.assign(out, { Tty: false, OpenStdin: false, StdinOnce: false, Env: cfg.Env ?? null, Cmd: cfg.Cmd ?? null });
  if (cfg.Healthcheck) out.Healthcheck = cfg.Healthcheck;
  if (cfg.ArgsEscaped) out.ArgsEscaped = true;
  Object.assign(out, {
    Image: (cfg as { Image?: string }).Image ?? '',
    Volumes: cfg.Volumes ?? null,
    WorkingDir: cfg.WorkingDir ?? '',
    Entrypoint: cfg.Entrypoint ?? null,
    OnBuild: cfg.OnBuild ?? null,
    Labels: cfg.Labels ?? null,
  });
  if (cfg.StopSignal) out.StopSignal = cfg.StopSignal;
  if (cfg.Shell) out.Shell = cfg.Shell;
  return out;
}

/** JSON indented by four spaces with Go's HTML escapes, as docker inspect prints it. */
export function indentJson(v: unknown): string {
  return JSON.stringify(v, null, 4).replace(/[<>&]/g, (ch) => goJson(ch).slice(1, -1));
}
