// Registry credentials and challenges: docker's config.json `auths`, the WWW-Authenticate
// header, and the bearer-token exchange of the distribution token spec.
// https://distribution.github.io/distribution/spec/auth/token/
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Credentials {
  username: string;
  password: string;
}

export interface Challenge {
  /** `bearer` or `basic`, lower-cased. */
  scheme: string;
  params: Record<string, string>;
}

/** Hub credentials are kept under its old index URL; any of these names find them. */
const DOCKER_HUB_KEYS = ['docker.io', 'index.docker.io', 'registry-1.docker.io'];

/** $DOCKER_CONFIG/config.json, else ~/.docker/config.json (docker's lookup). */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.DOCKER_CONFIG || path.join(os.homedir(), '.docker'), 'config.json');
}

/**
 * The username and password config.json's `auths` holds for `registry` (host[:port]), or
 * undefined. Keys may be bare hosts or URLs (`https://index.docker.io/v1/`). Credential
 * helpers (`credsStore`, `credHelpers`) are not consulted.
 */
export async function findCredentials(registry: string, configFile = dockerConfigPath()): Promise<Credentials | undefined> {
  let config: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
  try {
    config = JSON.parse(await fs.readFile(configFile, 'utf8')) as typeof config;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`read ${configFile}: ${(err as Error).message}`, { cause: err });
  }
  const wanted = DOCKER_HUB_KEYS.includes(registry) ? DOCKER_HUB_KEYS : [registry];
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    if (!wanted.includes(hostOfKey(key))) continue;
    if (entry.username && entry.password) return { username: entry.username, password: entry.password };
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    }
  }
  return undefined;
}

function hostOfKey(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
}

export function basicAuthorization(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

/**
 * Parses `Bearer realm="…",service="…",scope="a,b"` (RFC 7235: quoted values may hold commas).
 * Returns undefined for a header it cannot read.
 */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*([A-Za-z][\w-]*)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const pairs = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?/g;
  for (const p of m[2]!.matchAll(pairs)) params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  return { scheme: m[1]!.toLowerCase(), params };
}
