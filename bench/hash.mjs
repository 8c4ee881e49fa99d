// Times hashing for bench/run.sh, in seconds on stdout:
//   node bench/hash.mjs layer DIR   strata's commit: DIR's layer tar streamed into sha256 (engine/layer/tar.ts)
//   node bench/hash.mjs file FILE   node's crypto on a tar already written (read and hashed, 1 MiB chunks)
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [mode, target] = process.argv.slice(2);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const start = performance.now();
let digest;
if (mode === 'layer') {
  const { hashLayerTar } = await import(path.join(root, 'dist/engine/layer/tar.js'));
  digest = (await hashLayerTar(target)).diffId;
} else if (mode === 'file') {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(target, { highWaterMark: 1 << 20 })) hash.update(chunk);
  digest = `sha256:${hash.digest('hex')}`;
} else {
  console.error('usage: node bench/hash.mjs layer DIR | file FILE');
  process.exit(2);
}
process.stderr.write(`${mode} ${target}: ${digest}\n`);
console.log(((performance.now() - start) / 1000).toFixed(2));
