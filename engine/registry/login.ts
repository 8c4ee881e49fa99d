// login / logout: check credentials against a registry, then keep them where docker keeps
// them (config.json `auths`, or the credential helper config.json names).
import { UserInputError } from '../errors.js';
import { dockerConfigPath, eraseCredentials, storeCredentials, type Credentials } from './auth.js';
import { RegistryClient } from './client.js';
import { registryReference, type RegistryReference } from './reference.js';

/** `SERVER` as docker login takes it: a host[:port], or a URL; empty means Docker Hub. */
export function loginTarget(server: string | undefined, env: NodeJS.ProcessEnv = process.env): RegistryReference {
  const host = (server ?? '').replace(/^https?:\/\//i, '').replace(/\/.*$/, '');
  if (!host || host === 'docker.io' || host === 'index.docker.io' || host === 'registry-1.docker.io') return registryReference('docker.io/library/x', env);
  if (!/^[A-Za-z0-9.-]+(?::\d+)?$|^\[[0-9a-fA-F:]+\](?::\d+)?$/.test(host)) throw new UserInputError('INVALID_REGISTRY', `login: ${server} is not a registry host[:port]`);
  // The repository is only there to make a reference; login's GET /v2/ names none.
  return { ...registryReference(`${host}/x`, env), repository: 'x' };
}

/**
 * Logs in: GET /v2/ with the credentials (a token server, if the registry uses one, must
 * accept them), then stores them; a refresh token the token server hands out is kept in
 * place of the password, as docker does. Returns where they were stored.
 */
export async function login(
  server: string | undefined,
  username: string,
  password: string,
  opts: { configFile?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ registry: string; storedIn: string }> {
  if (!username || !password) throw new UserInputError('LOGIN_INCOMPLETE', 'login: a username and a password are needed');
  const target = loginTarget(server, opts.env);
  const creds: Credentials = { username, password };
  const client = new RegistryClient(target, `login ${target.registry}`, { credentials: creds, actions: 'pull' });
  await client.ping(true);
  const kept: Credentials = client.refreshToken ? { username, password: '', identityToken: client.refreshToken } : creds;
  const storedIn = await storeCredentials(target.registry, kept, opts.configFile ?? dockerConfigPath(opts.env));
  return { registry: target.registry, storedIn };
}

/** Removes the stored credentials of `server`; false when there were none. */
export async function logout(server: string | undefined, opts: { configFile?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ registry: string; removed: boolean }> {
  const target = loginTarget(server, opts.env);
  const removed = await eraseCredentials(target.registry, opts.configFile ?? dockerConfigPath(opts.env));
  return { registry: target.registry, removed };
}
