#!/usr/bin/env node
'use strict';
// CommonJS on purpose: it runs before anything starts libuv's thread pool, whose size is fixed
// when it starts (./thread-pool.cjs).
require('./thread-pool.cjs').sizeThreadPool();
// The installed entry point runs the compiled CLI (npm's "prepare" step builds dist/).
import('../dist/cli/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
    process.stderr.write('crdkit: dist/ is missing; run "npm run build" first\n');
    process.exit(1);
  }
  throw err;
});
