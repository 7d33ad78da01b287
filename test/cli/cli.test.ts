import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { freePort } from '../helpers/server.js';

const MAIN = join(process.cwd(), 'src', 'cli', 'main.ts');
// Resolved here: `--import tsx` would be looked up from the child's (temporary) cwd.
const TSX = import.meta.resolve('tsx');
const crdkit = (args: string[], cwd = process.cwd()) =>
  spawnSync(process.execPath, ['--import', TSX, MAIN, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 60_000,
  });

describe('crdkit command', () => {
  it('--help lists the commands', () => {
    const r = crdkit(['--help']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /serve/);
    assert.match(r.stdout, /call/);
  });

  it('serve --config with an unknown key exits 78 naming the key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'crdkit-cli-'));
    writeFileSync(
      join(dir, 'c.json'),
      JSON.stringify({
        baseUrl: 'https://x',
        tls: { cert: 'a', key: 'b' },
        clients: [{ iss: 'i', jwksUri: 'https://x/j' }],
        rules: 'r',
        colour: 'blue',
      }),
    );
    const r = crdkit(['serve', '--config', join(dir, 'c.json')]);
    assert.equal(r.status, 78);
    assert.match(r.stderr, /configuration error: colour: unknown key/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });

  it('sec-2: the demo serves HTTPS, and the printed call command gets coverage information', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'crdkit-demo-'));
    const port = await freePort();
    const child = spawn(
      process.execPath,
      ['--import', TSX, MAIN, 'serve', '--port', String(port)],
      { cwd, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      let err = '';
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
      });
      child.stdout.resume();
      const deadline = Date.now() + 60_000;
      while (!err.includes('--ca ') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      assert.match(err, /WARNING: demo credentials/);
      // Private demo files are readable by their owner only.
      assert.equal(
        statSync(join(cwd, '.crdkit', 'demo', 'client-private.jwk.json')).mode & 0o777,
        0o600,
      );
      assert.equal(statSync(join(cwd, '.crdkit', 'demo', 'server-key.pem')).mode & 0o777, 0o600);
      // The printed command, as a user would copy it (npx crdkit → this checkout's CLI).
      const printed = err
        .slice(err.indexOf('npx crdkit call'), err.indexOf('\n\n', err.indexOf('--ca ')))
        .replace(/\\\n\s*/g, ' ')
        .trim()
        .split(/\s+/)
        .slice(2);
      const r = crdkit(
        printed.map((a) => (a.startsWith('examples/') ? join(process.cwd(), a) : a)),
        cwd,
      );
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /HTTP 200/);
      const body = JSON.parse(r.stdout);
      assert.equal(body.systemActions.length, 2);
      assert.match(r.stdout, /ext-coverage-information/);
    } finally {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
    }
  });
});
