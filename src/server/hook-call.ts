/**
 * One hook call after authentication: validate → gather → decide → respond. Nothing received
 * is kept once the response is built (sec-5, sec-6): the request lives only in this call's scope.
 */
import type { Config } from '../config/schema.js';
import type { VerifiedClient } from '../auth/verify.js';
import { checkHookRequest } from '../cds/request.js';
import { checkRequestedVersion, readConfiguration } from '../crd/configuration.js';
import type { HookDefinition } from '../crd/hooks.js';
import type { HookName } from '../crd/types.js';
import { allowedFhirServer, FhirClient } from '../fhir/client.js';
import { gather } from '../fhir/gather.js';
import type { RulesFile } from '../rules/index.js';
import { resolveCoverage } from './coverage.js';
import { respond, type HookResponse } from './respond.js';

export interface HookCallDeps {
  config: Config;
  rules: RulesFile;
  now: () => number;
  /** Card types per hook (discovery's configuration options). */
  cardTypes: (hook: HookName) => readonly string[];
  /** Trust anchors for the EHR FHIR servers (PEM contents of `fhir.ca`), read once. */
  fhirCa?: Buffer;
}

/**
 * Handles one authenticated hook call: the CDS Hooks response body, and a summary for the
 * access log (counts and codes only).
 */
export async function handleHookCall(
  deps: HookCallDeps,
  def: HookDefinition,
  caller: VerifiedClient,
  body: unknown,
): Promise<{ response: HookResponse; summary: Record<string, unknown> }> {
  const req = checkHookRequest(def, body, deps.config.limits);
  checkRequestedVersion(req.extension['davinci-crd.requestedVersion']);
  const configuration = readConfiguration(
    def,
    req.extension['davinci-crd.configuration'],
    deps.cardTypes(def.hook),
  );

  // found-5 and the SSRF guard: only an https fhirServer registered for this client is queried.
  const fhirBase = allowedFhirServer(req.fhirServer, caller.client.fhirServers ?? []);
  const client =
    fhirBase && req.fhirAuthorization
      ? new FhirClient(fhirBase, req.fhirAuthorization.access_token, {
          timeoutMs: deps.config.fhir.timeoutMs,
          maxResponseBytes: deps.config.fhir.maxResponseBytes,
          ...(deps.fhirCa ? { ca: deps.fhirCa } : {}),
        })
      : undefined;
  const gathered = await gather(def, req, client, deps.config.fhir.timeoutMs);
  const today = new Date(deps.now()).toISOString().slice(0, 10);
  const coverage = await resolveCoverage(deps.rules, gathered, today);
  const response = respond({
    def,
    req,
    gathered,
    coverage,
    configuration,
    rules: deps.rules,
    today,
  });
  const summary = {
    hook: def.hook,
    fhirQueried: client !== undefined,
    payer: coverage.payer.id,
    orders: gathered.orders.length,
    cards: response.cards.length,
    systemActions: response.systemActions?.length ?? 0,
    ...(gathered.failures.length > 0 ? { failures: [...new Set(gathered.failures)] } : {}),
  };
  return { response, summary };
}
