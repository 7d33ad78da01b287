/**
 * Start-up checks of the authorization server's configuration: each fault is a ConfigError that
 * names the key, and no client can be registered in a shape SMART forbids.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkClients } from '../../../src/ehr/authz/clients.js';
import { createAuthorizationServer, type EhrClient } from '../../../src/ehr/authz/index.js';
import { generateClientKeyPair } from '../../../src/auth/sign.js';
import { SECRET, REDIRECT } from './helpers.js';

const app: EhrClient = {
  clientId: 'app',
  kind: 'confidential-symmetric',
  clientSecret: SECRET,
  grantTypes: ['authorization_code'],
  redirectUris: [REDIRECT],
  scope: 'patient/*.rs',
};

function refused(client: Partial<EhrClient>, key: string, message: RegExp): void {
  assert.throws(
    () => checkClients([{ ...app, ...client } as EhrClient]),
    (err: Error & { code?: string; key?: string }) => {
      assert.equal(err.code, 'ERR_CONFIG');
      assert.equal(err.key, `authz.clients[0].${key}`);
      assert.match(err.message, message);
      return true;
    },
  );
}

test('smart: each client kind has one authentication method and its own credentials', async () => {
  const { privateJwk, publicJwk } = await generateClientKeyPair('ES384');
  const p256 = await import('jose').then(async (j) =>
    j.exportJWK((await j.generateKeyPair('ES256', { extractable: true })).publicKey),
  );
  refused({ clientSecret: 'short' }, 'clientSecret', /at least 32 characters/);
  refused(
    { kind: 'confidential-asymmetric', clientSecret: undefined, jwks: { keys: [privateJwk] } },
    'jwks',
    /public keys only/,
  );
  refused(
    {
      kind: 'confidential-asymmetric',
      clientSecret: undefined,
      jwks: { keys: [{ ...p256, kid: 'k' }] },
    },
    'jwks',
    /P-384/,
  );
  refused(
    { kind: 'confidential-asymmetric', clientSecret: undefined, jwks: { keys: [] } },
    'jwks',
    /at least one key/,
  );
  refused({ kind: 'public' }, 'clientSecret', /only for confidential-symmetric/);
  checkClients([
    {
      ...app,
      kind: 'confidential-asymmetric',
      clientSecret: undefined,
      jwks: { keys: [publicJwk] },
    },
  ]);
});

test('smart: backend services are asymmetric; refresh needs a code; public clients are never launched', () => {
  refused(
    { grantTypes: ['client_credentials'] },
    'grantTypes',
    /client_credentials needs a confidential-asymmetric client/,
  );
  refused(
    { grantTypes: ['refresh_token'] },
    'grantTypes',
    /refresh_token needs authorization_code/,
  );
  refused(
    { kind: 'public', clientSecret: undefined, launchable: true },
    'launchable',
    /only confidential clients/,
  );
  refused({ redirectUris: [] }, 'redirectUris', /at least one redirect URI/);
  refused({ redirectUris: ['http://app.example/cb'] }, 'redirectUris', /https/);
  refused({ scope: 'patient/*.rs profile' }, 'scope', /unknown scope "profile"/);
  assert.throws(() => checkClients([app, app]), /authz.clients\[1\].clientId: is not unique/);
});

test('oauth: the base URL is an https origin and cookie keys are long secrets', async () => {
  const base = {
    clients: [app],
    store: { kind: 'sqlite' as const, path: ':memory:' },
    instance: 'i',
    cookieKeys: ['k'.repeat(32)],
  };
  await assert.rejects(
    createAuthorizationServer({ ...base, baseUrl: 'https://ehr.example/base' }),
    /authz.baseUrl: must be an https origin/,
  );
  await assert.rejects(
    createAuthorizationServer({ ...base, baseUrl: 'http://ehr.example' }),
    /authz.baseUrl/,
  );
  await assert.rejects(
    createAuthorizationServer({ ...base, baseUrl: 'https://ehr.example', cookieKeys: ['short'] }),
    /authz.cookieKeys/,
  );
  const ok = await createAuthorizationServer({ ...base, baseUrl: 'https://ehr.example:8443' });
  assert.equal(ok.smartConfiguration().issuer, 'https://ehr.example:8443/oauth');
  await ok.close();
});
