/** Pre-signing the benchmark's bearer tokens, spread over a few child processes. */
import { fork } from 'node:child_process';
import type { JWK } from 'jose';
import type { SignJob } from './sign-child.js';

/** Signs `count` distinct tokens for `aud` using `processes` children; keeps their order stable. */
export async function signTokens(opts: {
  privateJwk: JWK;
  iss: string;
  aud: string;
  count: number;
  processes: number;
  /** The signing child to run (the compiled bench/sign-child.js). */
  script: string;
}): Promise<string[]> {
  const n = Math.max(1, Math.min(opts.processes, opts.count));
  const shares = Array.from(
    { length: n },
    (_, i) => Math.floor(opts.count / n) + (i < opts.count % n ? 1 : 0),
  );
  const parts = await Promise.all(
    shares.map(
      (count) =>
        new Promise<string[]>((resolve, reject) => {
          const child = fork(opts.script, [], {
            execArgv: [],
            stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          });
          child.once('message', (m: { tokens: string[] }) => {
            if (m.tokens.length === count) resolve(m.tokens);
            else
              reject(new Error(`a signing child returned ${m.tokens.length} tokens, not ${count}`));
          });
          child.once('error', reject);
          // Settles nothing once the tokens arrived; otherwise reports the failure.
          child.once('close', (code) =>
            reject(new Error(`a token signing child exited (code ${code})`)),
          );
          const job: SignJob = { privateJwk: opts.privateJwk, iss: opts.iss, aud: opts.aud, count };
          child.send(job);
        }),
    ),
  );
  const all = parts.flat();
  if (new Set(all).size !== all.length) throw new Error('signing produced a duplicate token');
  return all;
}
