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
  /** A tag, or a manifest digest for `name@sha256:…` (the digest wins when both are given). */
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
  // A digest pins the content: `ubuntu:24.04@sha256:…` is fetched by its digest, as docker does.
  const reference = ref.digest ?? ref.tag;
  if (!reference) throw new UserInputError('INVALID_REFERENCE', `parse reference: ${input} names no tag or digest`);
  const host = registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
  return { registry, host, repository, reference, scheme: isInsecure(registry, env) ? 'http' : 'https' };
}

/**
 * Where a pull of `ref` is tried, in order: for Docker Hub, each mirror of
 * STRATA_REGISTRY_MIRRORS (comma-separated `host[:port]` or `http(s)://host[:port]`, as
 * dockerd's registry-mirrors), then the Hub itself; any other registry is asked directly.
 * A mirror serves Hub repositories under the same names (`library/ubuntu`).
 */
export function pullSources(ref: RegistryReference, env: NodeJS.ProcessEnv = process.env): RegistryReference[] {
  if (ref.registry !== DOCKER_HUB) return [ref];
  const mirrors = (env.STRATA_REGISTRY_MIRRORS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const out: RegistryReference[] = [];
  for (const m of mirrors) {
    const url = /^[a-z]+:\/\//i.test(m) ? new URL(m) : undefined;
    if (url && url.protocol !== 'http:' && url.protocol !== 'https:') throw new UserInputError('INVALID_MIRROR', `STRATA_REGISTRY_MIRRORS: ${m} is not an http(s) URL`);
    const host = url ? url.host : m.replace(/\/+$/, '');
    if (!/^[A-Za-z0-9.-]+(?::\d+)?$|^\[[0-9a-fA-F:]+\](?::\d+)?$/.test(host)) throw new UserInputError('INVALID_MIRROR', `STRATA_REGISTRY_MIRRORS: ${m} is not a host[:port]`);
    const insecure = isInsecure(host, env);
    if (url?.protocol === 'http:' && !insecure)
      throw new UserInputError('INVALID_MIRROR', `STRATA_REGISTRY_MIRRORS: ${m}: plain http only for loopback hosts and STRATA_INSECURE_REGISTRIES`);
    const scheme = url ? (url.protocol.slice(0, -1) as 'http' | 'https') : insecure ? 'http' : 'https';
    out.push({ ...ref, registry: host, host, scheme });
  }
  return [...out, ref];
}

/** Plain http is spoken only to loopback registries and those STRATA_INSECURE_REGISTRIES lists. */
export function isInsecure(registry: string, env: NodeJS.ProcessEnv): boolean {
  const hostname = registry.replace(/:\d+$/, '');
  if (hostname === 'localhost' || /^127(?:\.\d{1,3}){3}$/.test(hostname) || hostname === '[::1]') return true;
  const listed = (env.STRATA_INSECURE_REGISTRIES ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return listed.includes(registry) || listed.includes(hostname);
}

/** `REGISTRY/REPO` without tag or digest: the shape of a remote store's name (registryReference checks the rest). */
export function isRepositoryName(name: string): boolean {
  const last = name.slice(name.lastIndexOf('/') + 1);
  return name.includes('/') && !name.includes('@') && !last.includes(':') && name.length <= 512;
}
