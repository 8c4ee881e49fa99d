// Content digests (OCI "sha256:<hex>") and hashing while streaming.
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/** A digest in the OCI form `sha256:<64 hex>`. */
export type Digest = string & { readonly __brand: 'Digest' };

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

export function isDigest(s: string): s is Digest {
  return DIGEST_RE.test(s);
}

/** Validates and brands; throws on anything that is not `sha256:<hex>`. */
export function asDigest(s: string): Digest {
  if (!isDigest(s)) throw new TypeError(`parse digest: not a sha256 digest: ${JSON.stringify(s)}`);
  return s;
}

export function digestHex(d: Digest): string {
  return d.slice('sha256:'.length);
}

export function sha256(data: string | Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
}

/** chainID(1) = diffID(1); chainID(n) = sha256(chainID(n-1) + " " + diffID(n)). */
export function chainId(parent: Digest | undefined, diffId: Digest): Digest {
  return parent ? sha256(`${parent} ${diffId}`) : diffId;
}

/** A pass-through stream that hashes and counts what flows through it. */
export class DigestStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }
  /** Valid once the stream has ended. */
  digest(): Digest {
    return `sha256:${this.hash.copy().digest('hex')}` as Digest;
  }
}

/** Canonical JSON: object keys sorted, so equal values always hash equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = sortKeys(x);
    }
    return out;
  }
  return v;
}
