// The real dockerd as verifier: load what strata saved, run it, inspect it, clean up.
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';

export function uniqueName(prefix = 'strata-test'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export async function docker(args: string[], input?: string): Promise<string> {
  const r = await execa('docker', args, { input, reject: false });
  if (r.exitCode !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.exitCode}: ${r.stderr}`);
  return String(r.stdout);
}

/** `docker load -i FILE`; returns the names/IDs docker reports as loaded. */
export async function dockerLoad(file: string): Promise<string[]> {
  const out = await docker(['load', '-i', file]);
  return [...out.matchAll(/Loaded image(?: ID)?: (\S+)/g)].map((m) => m[1]!);
}

export async function dockerRun(image: string, args: string[] = []): Promise<string> {
  return docker(['run', '--rm', '--network', 'none', image, ...args]);
}

export interface InspectedImage {
  Id: string;
  Config: {
    Cmd?: string[] | null;
    Entrypoint?: string[] | null;
    Env?: string[];
    WorkingDir?: string;
    Labels?: Record<string, string> | null;
    ExposedPorts?: Record<string, object>;
    User?: string;
  };
  RootFS: { Layers?: string[] };
}

export async function dockerInspect(image: string): Promise<InspectedImage> {
  return (JSON.parse(await docker(['image', 'inspect', image])) as InspectedImage[])[0]!;
}

/** Rows of `docker history`, newest first: what created each and its size. */
export async function dockerHistory(image: string): Promise<{ createdBy: string; size: string }[]> {
  const out = await docker(['history', '--no-trunc', '--format', '{{.CreatedBy}}\t{{.Size}}', image]);
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [createdBy = '', size = ''] = l.split('\t');
      return { createdBy, size };
    });
}

export async function dockerRmi(...images: string[]): Promise<void> {
  await execa('docker', ['rmi', '-f', ...images], { reject: false });
}

/** Entry names of each layer tar in a saved archive, bottom layer first. */
export async function layerListings(archive: string): Promise<string[][]> {
  const manifest = JSON.parse((await execa('tar', ['-xOf', archive, 'manifest.json'])).stdout) as { Layers: string[] }[];
  const out: string[][] = [];
  for (const layer of manifest[0]!.Layers) {
    const r = await execa('sh', ['-c', 'tar -xOf "$1" "$2" | tar -t', 'sh', archive, layer]);
    out.push(r.stdout.split('\n').filter(Boolean));
  }
  return out;
}
