// Registry credentials and challenges: docker's config.json (`auths`, `credsStore`,
// `credHelpers`, `identitytoken`), the credential-helper protocol, and the WWW-Authenticate
// header. https://github.com/docker/docker-credential-helpers (protocol: get/store/erase)
// https://distribution.github.io/distribution/spec/auth/token/
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { EngineError, UserInputError } from '../errors.js';
import { writeFileAtomic } from '../fsutil/atomic.js';

export interface Credentials {
  username: string;
  password: string;
  /**
   * An OAuth refresh token (config.json's `identitytoken`, or a helper's answer whose Username
   * is `<token>`): traded for access tokens with the refresh_token grant, never sent as is.
   */
  identityToken?: string;
}

export interface Challenge {
  /** `bearer` or `basic`, lower-cased. */
  scheme: string;
  params: Record<string, string>;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface DockerConfig {
  auths?: Record<string, AuthEntry>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [other: string]: unknown;
}

/** Hub credentials are kept under its old index URL; any of these names find them. */
const DOCKER_HUB_KEYS = ['docker.io', 'index.docker.io', 'registry-1.docker.io'];
/** The key docker writes Hub credentials under, in `auths` and for helpers. */
const DOCKER_HUB_SERVER = 'https://index.docker.io/v1/';
/** docker-credential-* answers are a few hundred bytes; a helper that talks more is broken. */
const HELPER_MAX_OUTPUT = 64 * 1024;
const HELPER_TIMEOUT_MS = 30_000;
/** The helpers' "nothing stored" answer (docker-credential-helpers' ErrCredentialsNotFound). */
const NOT_FOUND = /credentials not found/i;

/** $DOCKER_CONFIG/config.json, else ~/.docker/config.json (docker's lookup). */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.DOCKER_CONFIG || path.join(os.homedir(), '.docker'), 'config.json');
}

/** The name docker keys a registry's credentials by: Hub's index URL, else host[:port]. */
export function serverKey(registry: string): string {
  return DOCKER_HUB_KEYS.includes(registry) ? DOCKER_HUB_SERVER : registry;
}

async function readConfig(configFile: string): Promise<DockerConfig> {
  try {
    const parsed = JSON.parse(await fs.readFile(configFile, 'utf8')) as unknown;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as DockerConfig;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new UserInputError('DOCKER_CONFIG_INVALID', `read ${configFile}: ${(err as Error).message}`, { cause: err });
  }
}

/** The helper that holds `registry`'s credentials: its `credHelpers` entry, else `credsStore`. */
function helperFor(config: DockerConfig, registry: string): string | undefined {
  const wanted = DOCKER_HUB_KEYS.includes(registry) ? [...DOCKER_HUB_KEYS, DOCKER_HUB_SERVER] : [registry];
  for (const [key, helper] of Object.entries(config.credHelpers ?? {})) {
    if (wanted.includes(key) || wanted.includes(hostOfKey(key))) return helper;
  }
  return config.credsStore || undefined;
}

/**
 * The credentials docker would use for `registry` (host[:port]), or undefined: a
 * `credHelpers` entry for it, else the `credsStore` helper, else `auths` (keys may be bare
 * hosts or URLs such as `https://index.docker.io/v1/`), as docker's own lookup goes.
 */
export async function findCredentials(registry: string, configFile = dockerConfigPath()): Promise<Credentials | undefined> {
  const config = await readConfig(configFile);
  const helper = helperFor(config, registry);
  if (helper) return helperGet(helper, serverKey(registry));
  const wanted = DOCKER_HUB_KEYS.includes(registry) ? DOCKER_HUB_KEYS : [registry];
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    if (!wanted.includes(hostOfKey(key)) || !entry || typeof entry !== 'object') continue;
    const creds = fromEntry(entry);
    if (creds) return creds;
  }
  return undefined;
}

function fromEntry(entry: AuthEntry): Credentials | undefined {
  let username = entry.username ?? '';
  let password = entry.password ?? '';
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) [username, password] = [decoded.slice(0, colon), decoded.slice(colon + 1)];
  }
  if (entry.identitytoken) return { username, password, identityToken: entry.identitytoken };
  return username && password ? { username, password } : undefined;
}

function hostOfKey(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
}

/** Runs `docker-credential-NAME ACTION` with `input` on stdin; undefined when it has nothing. */
async function runHelper(helper: string, action: 'get' | 'store' | 'erase', input: string): Promise<string | undefined> {
  if (!/^[\w.-]+$/.test(helper)) throw new UserInputError('CREDENTIAL_HELPER_INVALID', `credential helper: invalid name ${JSON.stringify(helper)}`);
  const program = `docker-credential-${helper}`;
  const r = await execa(program, [action], { input, reject: false, timeout: HELPER_TIMEOUT_MS, maxBuffer: HELPER_MAX_OUTPUT, stripFinalNewline: true });
  if ((r as { code?: string }).code === 'ENOENT' || (r.failed && r.exitCode === undefined && /ENOENT/.test(String(r.message)))) {
    throw new UserInputError('CREDENTIAL_HELPER_MISSING', `credential helper: ${program} is not on PATH (config.json names "${helper}")`);
  }
  if (r.exitCode !== 0) {
    const said = `${String(r.stdout)} ${String(r.stderr)}`.trim();
    if (action !== 'store' && NOT_FOUND.test(said)) return undefined;
    const why = r.timedOut ? `timed out after ${HELPER_TIMEOUT_MS / 1000}s` : said.slice(0, 300) || `exit status ${r.exitCode}`;
    throw new EngineError('CREDENTIAL_HELPER_FAILED', `credential helper: ${program} ${action} failed: ${why}`, { userError: true });
  }
  return String(r.stdout);
}

async function helperGet(helper: string, server: string): Promise<Credentials | undefined> {
  const out = await runHelper(helper, 'get', server);
  if (out === undefined) return undefined;
  let answer: { Username?: unknown; Secret?: unknown };
  try {
    answer = JSON.parse(out) as typeof answer;
  } catch (err) {
    throw new EngineError('CREDENTIAL_HELPER_FAILED', `credential helper: docker-credential-${helper} get answered no JSON`, { cause: err, userError: true });
  }
  const username = typeof answer.Username === 'string' ? answer.Username : '';
  const secret = typeof answer.Secret === 'string' ? answer.Secret : '';
  if (!secret) return undefined;
  // docker-credential-helpers' convention for identity tokens.
  if (username === '<token>') return { username: '', password: '', identityToken: secret };
  return { username, password: secret };
}

/**
 * Saves credentials as `docker login` does: through the registry's helper when config.json
 * names one, else base64 in `auths` (the file is written atomically, mode 0600, other keys
 * kept). Returns where they went.
 */
export async function storeCredentials(registry: string, creds: Credentials, configFile = dockerConfigPath()): Promise<string> {
  const config = await readConfig(configFile);
  const server = serverKey(registry);
  const helper = helperFor(config, registry);
  if (helper) {
    const secret = creds.identityToken ?? creds.password;
    const username = creds.identityToken ? '<token>' : creds.username;
    await runHelper(helper, 'store', JSON.stringify({ ServerURL: server, Username: username, Secret: secret }));
    return `docker-credential-${helper}`;
  }
  const auths = { ...(config.auths ?? {}) };
  for (const key of Object.keys(auths)) if (hostOfKey(key) === hostOfKey(server)) delete auths[key];
  const entry: AuthEntry = { auth: Buffer.from(`${creds.username}:${creds.identityToken ? '' : creds.password}`).toString('base64') };
  if (creds.identityToken) entry.identitytoken = creds.identityToken;
  auths[server] = entry;
  await writeConfig(configFile, { ...config, auths });
  return configFile;
}

/** Forgets `registry`'s credentials (helper erase, or the `auths` entry). False when none were kept. */
export async function eraseCredentials(registry: string, configFile = dockerConfigPath()): Promise<boolean> {
  const config = await readConfig(configFile);
  const server = serverKey(registry);
  const helper = helperFor(config, registry);
  let erased = false;
  if (helper) erased = (await runHelper(helper, 'erase', server)) !== undefined;
  const auths = { ...(config.auths ?? {}) };
  for (const key of Object.keys(auths)) {
    if (hostOfKey(key) !== hostOfKey(server)) continue;
    delete auths[key];
    erased = true;
  }
  if (config.auths && Object.keys(auths).length !== Object.keys(config.auths).length) await writeConfig(configFile, { ...config, auths });
  return erased;
}

async function writeConfig(configFile: string, config: DockerConfig): Promise<void> {
  await fs.mkdir(path.dirname(configFile), { recursive: true, mode: 0o700 });
  await writeFileAtomic(configFile, JSON.stringify(config, null, '\t') + '\n', 0o600);
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
