// Where a reference points on the wire: the registry host, the repository path the
// distribution API names, and whether it speaks plain http (docker's rule for loopback).
import { UserInputError } from '../errors.js';
import { parseReference } from '../image/reference.js';

export interface RegistryReference {
  /** The registry as users name it: `127.0.0.1:5000`, `ghcr.io`, `docker.io`. */
  registry: string;
  /** The host[:port] the API is served from (docker.io's is registry-1.docker.io). */
  host: string;
  /** The repository inside the registry: `app`, `library/busybox`, `org/app`. */
  repository: string;
  /** A tag, or a manifest digest for `name@sha256:…`. */
  reference: string;
  scheme: 'http' | 'https';
}

const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_API = 'registry-1.docker.io';

/**
 * Splits `[host[:port]/]repo[:tag|@digest]`. The first component is a registry when it has a
 * dot or a port or is `localhost` (docker's rule); otherwise the image lives on Docker Hub.
 * Loopback registries are spoken to over http, as docker treats them as insecure by default;
 * STRATA_INSECURE_REGISTRIES (comma-separated host[:port]) adds others, like dockerd's
 * --insecure-registry.
 */
export function registryReference(input: string, env: NodeJS.ProcessEnv = process.env): RegistryReference {
  const ref = parseReference(input);
  const slash = ref.name.indexOf('/');
  const first = slash < 0 ? '' : ref.name.slice(0, slash);
  const hasRegistry = first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost');
  const registry = hasRegistry ? first : DOCKER_HUB;
  let repository = hasRegistry ? ref.name.slice(slash + 1) : ref.name;
  if (!hasRegistry && !repository.includes('/')) repository = `library/${repository}`;
  const reference = ref.tag ?? ref.digest;
  if (!reference) throw new UserInputError('INVALID_REFERENCE', `push: ${input} names no tag or digest`);
  const host = registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
  return { registry, host, repository, reference, scheme: isInsecure(registry, env) ? 'http' : 'https' };
}

function isInsecure(registry: string, env: NodeJS.ProcessEnv): boolean {
  const hostname = registry.replace(/:\d+$/, '');
  if (hostname === 'localhost' || /^127(?:\.\d{1,3}){3}$/.test(hostname) || hostname === '[::1]') return true;
  const listed = (env.STRATA_INSECURE_REGISTRIES ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return listed.includes(registry) || listed.includes(hostname);
}
