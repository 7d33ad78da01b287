/**
 * Benchmark child: the "floor", the least any server must do for a CDS Hooks call over HTTPS
 * with crdkit's TLS settings: read the body, JSON.parse it, verify the bearer JWT's signature
 * (the same signature check and key type crdkit uses: `verifyJwsSignature` on Node's crypto)
 * and answer a small fixed JSON. No claim
 * checks, no replay store, no routing, no rules: the gap to crdkit is what crdkit adds.
 *
 * Started by bench/order-sign.ts, compiled to JavaScript:
 *   node floor-server.js <cert.pem> <key.pem> <client-public.jwk.json>
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { verifyJwsSignature } from '../src/auth/jws.js';
import { serverTlsOptions } from '../src/tls/options.js';
import { runChild } from './child.js';

const ANSWER = Buffer.from(JSON.stringify({ cards: [] }));

runChild(async () => {
  const [cert, key, jwkPath] = process.argv.slice(2);
  if (!cert || !key || !jwkPath) throw new Error('usage: floor-server.ts <cert> <key> <jwk>');
  const jwk = JSON.parse(readFileSync(jwkPath, 'utf8')) as JsonWebKey;
  const publicKey = createPublicKey({ key: jwk, format: 'jwk' });

  const server = createServer(serverTlsOptions({ cert, key }), (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const fail = (status: number) => {
        res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
      };
      try {
        JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return fail(400);
      }
      const auth = req.headers.authorization;
      if (!auth?.startsWith('Bearer ')) return fail(401);
      const [h = '', p = '', sig = ''] = auth.slice(7).split('.');
      verifyJwsSignature('ES384', publicKey, `${h}.${p}`, Buffer.from(sig, 'base64url')).then(
        (ok) => {
          if (!ok) return fail(401);
          res
            .writeHead(200, {
              'content-type': 'application/json',
              'content-length': ANSWER.length,
            })
            .end(ANSWER);
        },
        () => fail(401),
      );
    });
  });
  // The same keep-alive timeout as crdkit's Fastify configuration.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
});
