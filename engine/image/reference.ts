// Image references as users type them: NAME[:TAG] or NAME@sha256:..., in docker's familiar form.
import { UserInputError } from '../errors.js';

export interface ImageReference {
  /** Familiar repository name: `hello`, `myorg/app`, `registry:5000/x/y`. */
  name: string;
  tag?: string;
  digest?: string;
}

// The grammar of distribution/reference, simplified to what a name may hold.
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const DOMAIN = '(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)';
const NAME_RE = new RegExp(`^(?:${DOMAIN}/)?${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[\w][\w.-]{0,127}$/;

/** Parses `NAME[:TAG][@DIGEST]`; a missing tag and digest means `latest`. */
export function parseReference(input: string): ImageReference {
  let rest = input.trim();
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new UserInputError('INVALID_REFERENCE', `parse reference: invalid digest in ${JSON.stringify(input)}`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw new UserInputError('INVALID_REFERENCE', `parse reference: invalid tag in ${JSON.stringify(input)}`);
  }
  let name = rest;
  if (name.startsWith('docker.io/')) name = name.slice('docker.io/'.length);
  if (name.startsWith('library/')) name = name.slice('library/'.length);
  if (!NAME_RE.test(name)) {
    const hint = /[A-Z]/.test(name) ? ' (repository names must be lowercase)' : '';
    throw new UserInputError('INVALID_REFERENCE', `parse reference: invalid image name ${JSON.stringify(input)}${hint}`);
  }
  if (!tag && !digest) tag = 'latest';
  return { name, tag, digest };
}

/** `name:tag` (or `name@digest`): the key under which the store keeps a tag. */
export function formatReference(ref: ImageReference): string {
  if (ref.tag) return `${ref.name}:${ref.tag}`;
  return `${ref.name}@${ref.digest}`;
}

export function normalizeReference(input: string): string {
  return formatReference(parseReference(input));
}
