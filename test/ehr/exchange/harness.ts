/**
 * A minimal EHR authorization server for the token-exchange tests and benchmark: oidc-provider 9
 * on a loopback HTTPS server, the RFC 8693 grant registered, tokens kept in a Map (what
 * `resolveSubject` reads and `issue` writes), the audit trail in a real SQLite store (in memory)
 * behind a wrapper that records every `appendToken` input and can be made to fail.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider from 'oidc-provider';
import { AuditUnavailableError } from '../../../src/audit/errors.js';
import { openAuditStore } from '../../../src/audit/store.js';
import type { AuditStore, TokenAuditInput } from '../../../src/audit/types.js';
import { generateClientKeyPair } from '../../../src/auth/sign.js';
import {
  registerTokenExchange,
  TOKEN_EXCHANGE_GRANT,
  type DelegateAudience,
  type TokenExchangeOptions,
} from '../../../src/ehr/authz/token-exchange.js';
import type { AccessGrant } from '../../../src/ehr/types.js';
import { selfSignedCertificate } from '../../../src/tls/certs.js';
import { BASE_TLS } from '../../../src/tls/options.js';

export const FHIR_BASE = 'https://ehr.example.org/fhir';
export const PAYER_A = 'payer-a';
export const PAYER_B = 'payer-b';

/** Downstream services: payer A's own DTR, a BAA vendor of A, payer B's service, a chain end. */
export const AUDIENCES: DelegateAudience[] = [
  {
    audience: 'https://dtr.payer-a.example/fhir',
    organization: PAYER_A,
    relationship: 'same-organization',
    clientId: 'dtr-a',
  },
  {
    audience: 'https://vendor.example/pa',
    actor: 'https://vendor.example',
    organization: 'vendor-inc',
    relationship: 'business-associate',
    associates: [PAYER_A],
  },
  {
    audience: 'https://crd.payer-b.example/internal',
    organization: PAYER_B,
    relationship: 'same-organization',
  },
];

export const SECRETS = {
  'crd-payer-a': 'secret-a-0123456789abcdef0123456789abcdef',
  'crd-payer-b': 'secret-b-0123456789abcdef0123456789abcdef',
  'dtr-a': 'secret-dtr-0123456789abcdef0123456789abcdef',
  'no-exchange': 'secret-nx-0123456789abcdef0123456789abcdef',
} as const;

/** The private_key_jwt client of payer A (ES384). */
export const JWT_CLIENT = 'crd-payer-a-jwt';

export interface ExchangeServer {
  issuer: string;
  tokenEndpoint: string;
  ca: string;
  provider: Provider;
  /** The TLS handshakes the server has completed (to see connection reuse). */
  handshakes(): number;
  /** Every token the server knows, by the token string. */
  tokens: Map<string, AccessGrant>;
  revoked: Set<string>;
  /** The inputs given to `appendToken`, in order. */
  records: TokenAuditInput[];
  /** Token ids revoked through `revoke` (audit failure). */
  revokedIds: string[];
  audit: AuditStore;
  setAuditFailing(failing: boolean): void;
  /** Adds an active subject token (defaults: payer A's client, 30 s, the FHIR base). */
  mint(grant?: Partial<AccessGrant>): { token: string; grant: AccessGrant };
  jwtClientKey: JWK;
  /** Waits for pending audit writes started by event listeners. */
  settle(): Promise<void>;
  close(): Promise<void>;
}

export interface ExchangeServerOptions {
  maxChainLength?: number;
  /** Without an audit store (the benchmark's variant without audit). */
  noAudit?: boolean;
}

export async function startExchangeServer(
  opts: ExchangeServerOptions = {},
): Promise<ExchangeServer> {
  const pem = await selfSignedCertificate('localhost', 2);
  const server: Server = createServer({ ...BASE_TLS, cert: pem.cert, key: pem.key });
  let handshakes = 0;
  server.on('secureConnection', () => void handshakes++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const issuer = `https://127.0.0.1:${port}`;

  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signing = { ...(await exportJWK(privateKey)), kid: 'sig-1', alg: 'RS256', use: 'sig' };
  const jwtClient = await generateClientKeyPair('ES384');

  const base = {
    grant_types: [TOKEN_EXCHANGE_GRANT],
    response_types: [],
    redirect_uris: [],
  };
  const provider = new Provider(issuer, {
    clients: [
      ...(['crd-payer-a', 'crd-payer-b', 'dtr-a'] as const).map((id) => ({
        ...base,
        client_id: id,
        client_secret: SECRETS[id],
        token_endpoint_auth_method: 'client_secret_basic' as const,
      })),
      {
        client_id: 'no-exchange',
        client_secret: SECRETS['no-exchange'],
        token_endpoint_auth_method: 'client_secret_basic' as const,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
      },
      {
        ...base,
        client_id: JWT_CLIENT,
        client_name: 'Payer A CRD server',
        token_endpoint_auth_method: 'private_key_jwt' as const,
        token_endpoint_auth_signing_alg: 'ES384',
        jwks: { keys: [jwtClient.publicJwk as Record<string, unknown>] },
      },
    ],
    clientAuthMethods: ['client_secret_basic', 'private_key_jwt'],
    enabledJWA: { clientAuthSigningAlgValues: ['ES384', 'RS384'] },
    jwks: { keys: [signing] },
    features: { devInteractions: { enabled: false }, clientCredentials: { enabled: true } },
  });

  const tokens = new Map<string, AccessGrant>();
  const revoked = new Set<string>();
  const records: TokenAuditInput[] = [];
  const revokedIds: string[] = [];
  const pending = new Set<Promise<unknown>>();
  let failing = false;
  const store = opts.noAudit
    ? undefined
    : await openAuditStore({ url: 'sqlite', dataDir: ':memory:', instance: 'test-as' });
  const audit = {
    async appendToken(input: TokenAuditInput) {
      records.push(input);
      if (failing) throw new AuditUnavailableError('SQLITE_BUSY');
      const p = store!.appendToken(input);
      pending.add(p);
      try {
        return await p;
      } finally {
        pending.delete(p);
      }
    },
    verify: () => store!.verify(),
    export: (f: Parameters<AuditStore['export']>[0]) => store!.export(f),
    close: () => store!.close(),
  } as unknown as AuditStore;

  const options: TokenExchangeOptions = {
    fhirBaseUrl: FHIR_BASE,
    resolveSubject: async (token) => {
      const grant = tokens.get(token);
      if (!grant || revoked.has(grant.tokenId) || grant.expiresAt.getTime() <= Date.now()) {
        return undefined;
      }
      return grant;
    },
    issue: async (grant, clientId) => {
      const access_token = randomBytes(32).toString('base64url');
      const tokenId = randomBytes(16).toString('hex');
      const issuedAt = new Date();
      tokens.set(access_token, { ...grant, clientId, tokenId, issuedAt });
      const expires_in = Math.floor((grant.expiresAt.getTime() - issuedAt.getTime()) / 1000);
      return { access_token, expires_in, tokenId };
    },
    revoke: async (tokenId) => {
      revokedIds.push(tokenId);
      revoked.add(tokenId);
    },
    audiences: AUDIENCES,
    instance: 'test-as',
    ...(opts.noAudit ? {} : { audit }),
    ...(opts.maxChainLength ? { maxChainLength: opts.maxChainLength } : {}),
  };
  registerTokenExchange(provider, options);
  server.on('request', provider.callback());

  function mint(partial: Partial<AccessGrant> = {}): { token: string; grant: AccessGrant } {
    const token = randomBytes(32).toString('base64url');
    const grant: AccessGrant = {
      tokenId: randomBytes(16).toString('hex'),
      clientId: 'crd-payer-a',
      scopes: ['patient/Patient.rs', 'patient/Coverage.rs', 'patient/Condition.rs'],
      patient: 'p-123',
      hookInstance: 'd1577c69-dfbe-44ad-ba6d-3e05e953b2ea',
      service: 'order-sign-crd',
      declaredTypes: ['Patient', 'Coverage', 'Condition'],
      audience: FHIR_BASE,
      payer: PAYER_A,
      issuedAt: new Date(),
      expiresAt: new Date(Date.now() + 30_000),
      ...partial,
    };
    tokens.set(token, grant);
    return { token, grant };
  }

  return {
    issuer,
    tokenEndpoint: `${issuer}/token`,
    ca: pem.cert,
    provider,
    handshakes: () => handshakes,
    tokens,
    revoked,
    records,
    revokedIds,
    audit,
    setAuditFailing: (f) => {
      failing = f;
    },
    mint,
    jwtClientKey: jwtClient.privateJwk,
    async settle() {
      await new Promise((r) => setTimeout(r, 20));
      await Promise.all([...pending]);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await store?.close();
    },
  };
}

/** `Authorization: Basic` for one of the test clients. */
export function basicAuth(clientId: keyof typeof SECRETS): string {
  return `Basic ${Buffer.from(`${clientId}:${SECRETS[clientId]}`).toString('base64')}`;
}
