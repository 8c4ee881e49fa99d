// `RUN --mount=…` options: parsed and checked at planning time, so a bad mount fails the build
// before anything runs. The option names and defaults are BuildKit's
// (https://docs.docker.com/reference/dockerfile/#run---mount).
import posixPath from 'node:path/posix';
import { DockerfileError } from '../errors.js';
import type { MountSource, RunMount } from './types.js';

interface Where {
  file: string;
  line: number;
}

const MOUNT_TYPES = ['bind', 'cache', 'tmpfs', 'secret'];
const KEYS: Record<string, string[]> = {
  bind: ['target', 'source', 'from', 'rw', 'readonly'],
  cache: ['target', 'id', 'sharing', 'from', 'source', 'mode', 'uid', 'gid', 'readonly'],
  tmpfs: ['target', 'size'],
  secret: ['target', 'id', 'required', 'mode', 'uid', 'gid', 'env'],
};
// Other spellings BuildKit accepts for the same option.
const ALIASES: Record<string, string> = { dst: 'target', destination: 'target', src: 'source', ro: 'readonly', readwrite: 'rw' };

/** The raw `from=` of a mount value, before expansion, for the stage graph. */
export function mountFromValue(value: string): string | undefined {
  for (const field of value.split(',')) {
    const eq = field.indexOf('=');
    if (eq > 0 && field.slice(0, eq).trim().toLowerCase() === 'from') return field.slice(eq + 1);
  }
  return undefined;
}

/**
 * One `--mount` value as a RunMount. `expand` expands a value with the step's variables;
 * `resolveFrom` turns a `from=` into the stage or image it names.
 */
export function parseRunMount(value: string, opts: { where: Where; workdir: string; expand: (w: string) => string; resolveFrom: (from: string) => MountSource }): RunMount {
  const { where } = opts;
  const fail = (detail: string): never => {
    throw new DockerfileError(where, `RUN --mount=${value}: ${detail}`);
  };
  const fields = new Map<string, string | undefined>();
  for (const raw of value.split(',')) {
    if (raw.trim() === '') continue;
    const eq = raw.indexOf('=');
    let key = (eq < 0 ? raw : raw.slice(0, eq)).trim().toLowerCase();
    key = ALIASES[key] ?? key;
    fields.set(key, eq < 0 ? undefined : opts.expand(raw.slice(eq + 1)));
  }
  const type = fields.get('type') ?? 'bind';
  fields.delete('type');
  if (type === 'ssh') fail('type=ssh is not supported');
  if (!MOUNT_TYPES.includes(type)) fail(`unknown mount type ${JSON.stringify(type)}`);
  for (const key of fields.keys()) {
    if (!KEYS[type]!.includes(key)) fail(`unknown option ${JSON.stringify(key)} for type=${type}`);
  }
  const bool = (key: string): boolean => {
    if (!fields.has(key)) return false;
    const v = fields.get(key);
    if (v === undefined || v === 'true' || v === '1') return true;
    if (v === 'false' || v === '0') return false;
    return fail(`${key} must be true or false, got ${JSON.stringify(v)}`);
  };
  const int = (key: string, base: 8 | 10, dflt: number): number => {
    const v = fields.get(key);
    if (v === undefined) return dflt;
    if (!(base === 8 ? /^[0-7]{1,4}$/ : /^\d+$/).test(v)) fail(`${key} must be ${base === 8 ? 'an octal mode' : 'a number'}, got ${JSON.stringify(v)}`);
    return parseInt(v, base);
  };
  const rawTarget = fields.get('target');
  const target = rawTarget ? posixPath.resolve(opts.workdir, rawTarget) : undefined;
  const needTarget = (): string => target ?? fail('target is required');
  const from = fields.get('from');

  switch (type) {
    case 'bind':
      return {
        type: 'bind',
        target: needTarget(),
        from: from ? opts.resolveFrom(from) : { kind: 'context' },
        source: fields.get('source') ?? '/',
        readwrite: bool('rw') && !bool('readonly'),
      };
    case 'cache': {
      const sharing = fields.get('sharing') ?? 'shared';
      if (sharing !== 'shared' && sharing !== 'private' && sharing !== 'locked') fail(`sharing must be shared, private or locked, got ${JSON.stringify(sharing)}`);
      const t = needTarget();
      return {
        type: 'cache',
        target: t,
        id: fields.get('id') || t,
        sharing: sharing as 'shared' | 'private' | 'locked',
        from: from ? opts.resolveFrom(from) : undefined,
        source: fields.get('source') ?? '/',
        mode: int('mode', 8, 0o755),
        uid: int('uid', 10, 0),
        gid: int('gid', 10, 0),
        readonly: bool('readonly'),
      };
    }
    case 'tmpfs': {
      const size = fields.get('size');
      return { type: 'tmpfs', target: needTarget(), size: size === undefined ? undefined : parseSize(size, fail) };
    }
    default: {
      // A secret's id defaults to the target's name; the target to /run/secrets/<id>.
      const id = fields.get('id') || (target ? posixPath.basename(target) : fail('id or target is required'));
      const env = fields.get('env');
      if (env !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(env)) fail(`env must be a variable name, got ${JSON.stringify(env)}`);
      return {
        type: 'secret',
        id,
        // With env= and no target, the secret is in the environment only.
        target: target ?? (env ? undefined : `/run/secrets/${id}`),
        env,
        required: bool('required'),
        mode: int('mode', 8, 0o400),
        uid: int('uid', 10, 0),
        gid: int('gid', 10, 0),
      };
    }
  }
}

/** `64m`, `1g`, `4096` (bytes) → bytes, as docker's RAMInBytes reads them. */
function parseSize(v: string, fail: (d: string) => never): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(v.trim());
  if (!m) return fail(`size must be a size such as 64m, got ${JSON.stringify(v)}`);
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(Number(m[1]) * unit);
}
