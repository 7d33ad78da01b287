'use strict';
// libuv's thread pool runs crdkit's signature checks (crypto.verify). Node's default is 4
// threads whatever the machine; crdkit uses one per core (at least 2): on a 2-core machine, 4
// checks at once only compete with the event loop and the SQLite thread for the CPU and slow
// every call down (docs/benchmarks.md). An explicit UV_THREADPOOL_SIZE is left as it is.
// It must be set before anything uses the pool, so the CommonJS entry point calls it first.
const { availableParallelism } = require('node:os');

/** The pool size crdkit uses when UV_THREADPOOL_SIZE is not set. */
function threadPoolSize() {
  return Math.max(2, availableParallelism());
}

/** Sets UV_THREADPOOL_SIZE in `env` (this process's by default) unless it is already set. */
function sizeThreadPool(env = process.env) {
  if (env.UV_THREADPOOL_SIZE === undefined) env.UV_THREADPOOL_SIZE = String(threadPoolSize());
  return env;
}

module.exports = { threadPoolSize, sizeThreadPool };
