/**
 * sec-9 on the payer's side: the EHR's token is never passed on. When an answer sends the
 * clinician to DTR (documentation needed), the CRD server exchanges the call's token at the EHR's
 * own token endpoint (RFC 8693) for a delegate token naming its DTR service, and keeps that, not
 * the original, in the memory-only DTR context cache (sec-6's one exception) under each
 * coverage-assertion-id. A failed exchange never fails the hook call: DTR then starts without
 * a token and asks the EHR itself.
 */
import { readFileSync } from 'node:fs';
import type { JWK } from 'jose';
import type { Logger } from 'pino';
import { DtrContextCache } from '../audit/dtr-cache.js';
import type { Config } from '../config/schema.js';
import { exchangeToken, DelegateError } from '../fhir/delegate.js';
import type { HookResponse } from './respond.js';

/** What the DTR service gets for one coverage assertion. */
export interface DtrContext {
  fhirServer: string;
  /** The delegate token (for the DTR audience, `act` naming it), never the EHR's original. */
  accessToken: string;
  expiresAt: number;
  scope?: string;
  patient?: string;
  orders: string[];
}

export interface Delegation {
  cache: DtrContextCache;
  /** Exchanges and caches when the answer needs documentation; resolves when done. */
  afterAnswer(input: {
    fhirServer: string | undefined;
    accessToken: string | undefined;
    patient: string | undefined;
    response: HookResponse;
  }): Promise<void>;
}

const COVERAGE_INFORMATION = 'ext-coverage-information';

/** Coverage assertions whose documentation is needed, with their orders. */
function needingDocumentation(response: HookResponse): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const action of response.systemActions ?? []) {
    const resource = action.resource as
      | {
          resourceType?: string;
          id?: string;
          extension?: Array<{
            url?: string;
            extension?: Array<{ url?: string; valueCode?: string; valueString?: string }>;
          }>;
        }
      | undefined;
    for (const ext of resource?.extension ?? []) {
      if (!ext.url?.endsWith(COVERAGE_INFORMATION)) continue;
      const parts = ext.extension ?? [];
      const doc = parts.find((p) => p.url === 'doc-needed')?.valueCode;
      const id = parts.find((p) => p.url === 'coverage-assertion-id')?.valueString;
      if (!doc || doc === 'no-doc' || !id) continue;
      found.set(id, [...(found.get(id) ?? []), `${resource!.resourceType}/${resource!.id}`]);
    }
  }
  return found;
}

/** The delegation of `config.delegation`, or undefined when not configured. */
export function createDelegation(
  config: Config,
  logger: Logger,
  fhirCa?: Buffer,
): Delegation | undefined {
  const settings = config.delegation;
  if (!settings) return undefined;
  const ehrs = new Map(
    settings.ehrs.map((e) => [
      e.fhirServer,
      { ...e, privateJwk: JSON.parse(readFileSync(e.privateKey, 'utf8')) as JWK },
    ]),
  );
  const cache = new DtrContextCache({ ttlMs: settings.ttlMinutes * 60_000 });
  return {
    cache,
    async afterAnswer({ fhirServer, accessToken, patient, response }) {
      if (!fhirServer || !accessToken || !URL.canParse(fhirServer)) return;
      const ehr = ehrs.get(new URL(fhirServer).origin);
      if (!ehr) return;
      const assertions = needingDocumentation(response);
      if (assertions.size === 0) return;
      try {
        const delegate = await exchangeToken({
          tokenEndpoint: ehr.tokenEndpoint,
          subjectToken: accessToken,
          audience: settings.audience,
          client: { clientId: ehr.clientId, privateJwk: ehr.privateJwk },
          ...(fhirCa ? { ca: fhirCa } : {}),
          timeoutMs: Math.min(2000, config.fhir.timeoutMs),
        });
        const expiresAt = Date.now() + delegate.expiresIn * 1000;
        for (const [id, orders] of assertions) {
          const context: DtrContext = {
            fhirServer,
            accessToken: delegate.accessToken,
            expiresAt,
            ...(delegate.scope ? { scope: delegate.scope } : {}),
            ...(patient ? { patient } : {}),
            orders,
          };
          cache.set(id, context);
        }
      } catch (err) {
        const code = err instanceof DelegateError ? err.code : 'ERR_DELEGATE';
        logger.warn({ code }, 'delegate token for DTR not obtained; DTR will ask the EHR itself');
      }
    },
  };
}
