// Image-config transitions of the config-only instructions: pure functions, docker's rules.
import type { ContainerConfig } from '../image/types.js';

/** docker's default shell for the shell form when the image sets none. */
/** docker's PATH for images that set none. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export const DEFAULT_SHELL = ['/bin/sh', '-c'];

/** Env with `key` set: replaced in place when present (docker keeps the order), else appended. */
export function setEnv(env: readonly string[] | undefined, key: string, value: string): string[] {
  const out = [...(env ?? [])];
  const i = out.findIndex((e) => e.slice(0, e.indexOf('=') < 0 ? e.length : e.indexOf('=')) === key);
  if (i >= 0) out[i] = `${key}=${value}`;
  else out.push(`${key}=${value}`);
  return out;
}

/** The image's Env as a map, for expansion and for RUN. */
export function envMap(env: readonly string[] | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of env ?? []) {
    const i = e.indexOf('=');
    if (i < 0) m.set(e, '');
    else m.set(e.slice(0, i), e.slice(i + 1));
  }
  return m;
}

/**
 * Normalizes EXPOSE words: `80` → `80/tcp`, `53/UDP` → `53/udp`, `8000-8002` → three
 * ports, as docker's nat.ParsePortSpecs does. Returns undefined for a malformed word.
 */
export function parsePortSpec(word: string): string[] | undefined {
  const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(word);
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = m[2] === undefined ? start : Number(m[2]);
  const proto = (m[3] ?? 'tcp').toLowerCase();
  if (start > 65535 || end > 65535 || end < start) return undefined;
  const out: string[] = [];
  for (let p = start; p <= end; p++) out.push(`${p}/${proto}`);
  return out;
}

export function withExposedPorts(config: ContainerConfig, ports: string[]): Record<string, Record<string, never>> {
  const out: Record<string, Record<string, never>> = { ...(config.ExposedPorts ?? {}) };
  for (const p of ports) out[p] = {};
  return out;
}

/** docker's STOPSIGNAL check: a signal name (SIGTERM, TERM) or a number. */
export function isValidSignal(sig: string): boolean {
  return /^(SIG)?[A-Z][A-Z0-9+-]*$/.test(sig) || /^\d+$/.test(sig);
}
