/**
 * crdkit sizes libuv's thread pool, where its signature checks run, to the machine: one thread
 * per core, at least 2, unless UV_THREADPOOL_SIZE says otherwise. The CommonJS entry point sets
 * it before anything starts the pool (docs/benchmarks.md says why).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = process.cwd();
const POOL = join(ROOT, 'bin', 'thread-pool.cjs');

function poolSizeIn(env: NodeJS.ProcessEnv): string {
  const code = `require(${JSON.stringify(POOL)}).sizeThreadPool(); process.stdout.write(process.env.UV_THREADPOOL_SIZE)`;
  const { UV_THREADPOOL_SIZE: _drop, ...rest } = process.env;
  const run = spawnSync(process.execPath, ['-e', code], { env: { ...rest, ...env } });
  assert.equal(run.status, 0, run.stderr.toString());
  return run.stdout.toString();
}

test('crdkit: the thread pool gets one thread per core, at least 2', () => {
  assert.equal(poolSizeIn({}), String(Math.max(2, availableParallelism())));
});

test('crdkit: an explicit UV_THREADPOOL_SIZE is left as it is', () => {
  assert.equal(poolSizeIn({ UV_THREADPOOL_SIZE: '7' }), '7');
});

test('crdkit: the entry point sizes the pool before it loads anything else', () => {
  const entry = readFileSync(join(ROOT, 'bin', 'crdkit.cjs'), 'utf8');
  const sizing = entry.indexOf("require('./thread-pool.cjs').sizeThreadPool()");
  assert.ok(sizing > 0, 'bin/crdkit.cjs calls sizeThreadPool');
  assert.ok(sizing < entry.indexOf('import('), 'before the CLI is imported');
});

test('crdkit: the size set is the pool Node starts (its threads counted in /proc)', (t) => {
  if (!existsSync('/proc/self/task')) return t.skip('no /proc here to count threads');
  const code = `
    require(${JSON.stringify(POOL)}).sizeThreadPool();
    const before = require('node:fs').readdirSync('/proc/self/task').length;
    let n = 0;
    for (let i = 0; i < 16; i++) require('node:crypto').pbkdf2('x', 'y', 20000, 32, 'sha256', () => {
      if (++n === 16) process.stdout.write(String(require('node:fs').readdirSync('/proc/self/task').length - before));
    });`;
  const { UV_THREADPOOL_SIZE: _drop, ...env } = process.env;
  const run = spawnSync(process.execPath, ['-e', code], { env });
  assert.equal(run.status, 0, run.stderr.toString());
  assert.equal(run.stdout.toString(), String(Math.max(2, availableParallelism())));
});
