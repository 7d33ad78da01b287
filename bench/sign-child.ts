/**
 * Benchmark child that signs CDS Hooks JWTs with `signCdsJwt` (each with its own jti) and sends
 * them back over IPC. Several run side by side so pre-signing uses every core.
 */
import type { JWK } from 'jose';
import { signCdsJwt } from '../src/auth/sign.js';

/** The job a signing child receives. */
export interface SignJob {
  privateJwk: JWK;
  iss: string;
  aud: string;
  count: number;
}

if (process.send) {
  process.once('message', (job: SignJob) => {
    void (async () => {
      const tokens: string[] = [];
      for (let i = 0; i < job.count; i++) {
        tokens.push(await signCdsJwt({ privateJwk: job.privateJwk, iss: job.iss, aud: job.aud }));
      }
      process.send!({ tokens }, undefined, {}, () => process.exit(0));
    })().catch((err: unknown) => {
      process.stderr.write(`sign-child: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
  });
}
