// Build secrets (`strata build --secret`) travel from the client to the RUN activity through
// the store, never through Temporal: $STRATA_HOME/secrets/<build ID>/<sha256 of id>, the
// directory 0700 and each file 0600. The client writes them before the build starts and
// removes the directory when the build ends, so a worker can read them only when it shares
// the client's store (the same machine, or a shared filesystem).
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { digestHex, sha256 } from '../digest.js';
import { UserInputError } from '../errors.js';

export function buildSecretsDir(root: string, buildId: string): string {
  // A build ID is a workflow ID, which anyone who reaches Temporal picks: `..` must not climb.
  if (!/^[\w.-]+$/.test(buildId) || /^\.+$/.test(buildId)) throw new UserInputError('INVALID_BUILD_ID', `build secrets: invalid build ID ${JSON.stringify(buildId)}`);
  return path.join(root, 'secrets', buildId);
}

function secretPath(root: string, buildId: string, id: string): string {
  return path.join(buildSecretsDir(root, buildId), digestHex(sha256(id)));
}

/** Writes one secret for a build (mode 0600, in a 0700 directory). */
export async function writeBuildSecret(root: string, buildId: string, id: string, value: Uint8Array): Promise<void> {
  const dir = buildSecretsDir(root, buildId);
  await fs.mkdir(path.dirname(dir), { recursive: true, mode: 0o700 });
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  await fs.chmod(dir, 0o700);
  await fs.writeFile(secretPath(root, buildId, id), value, { mode: 0o600 });
}

/** The secret's bytes, or undefined when the build was given no secret of that id. */
export async function readBuildSecret(root: string, buildId: string, id: string): Promise<Buffer | undefined> {
  return fs.readFile(secretPath(root, buildId, id)).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
}

/** Removes every secret of a build. Idempotent. */
export async function removeBuildSecrets(root: string, buildId: string): Promise<void> {
  await fs.rm(buildSecretsDir(root, buildId), { recursive: true, force: true });
}
