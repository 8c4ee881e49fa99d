#!/usr/bin/env node
// Entry for `npx strata`: the CLI is compiled to dist/ by `npm run build`.
import('../dist/client/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/client/main.js')) {
    console.error('strata: not built yet; run `npm run build` (or `npm run hello`) first');
    process.exit(1);
  }
  throw err;
});
