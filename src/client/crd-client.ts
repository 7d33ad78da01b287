/**
 * The EHR's CRD client: for one hook in the EHR's workflow, it finds the payers with active
 * coverage for the patient (dev-26 to dev-29), reads discovery (found-16, found-17, found-31),
 * runs the prefetch templates against the EHR's FHIR API, applies the sharing policy and the
 * per-payer opaque ids (sec-7), mints a 30-second read-only `fhirAuthorization` (found-20 to
 * found-22), signs the call (ES384, `kid`, `jku`, fresh `jti`), sends it under the hook's deadline
 * (found-2, found-3, found-6), validates the answer card by card, applies coverage information to
 * the orders in the EHR (resp-48), keeps it for DTR and PAS (resp-46), shows repeated advice once
 * (found-39), revokes the token, and records the exchange in the audit trail (found-37).
 */
import { randomUUID } from 'node:crypto';
import type {
  Bundle,
  Consent,
  Coverage,
  Extension,
  Organization,
  Resource,
} from '@medplum/fhirtypes';
import type { Logger } from 'pino';
import type { AuditStore } from '../audit/types.js';
import { SUPPORTED_VERSIONS } from '../crd/configuration.js';
import { ORDER_TYPES } from '../crd/hooks.js';
import { prefetchResourceTypes, templateResourceType } from '../crd/prefetch-templates.js';
import type { FhirClient } from '../fhir/client.js';
import type { FhirAuthorization, HookTokenInput } from '../ehr/authz/types.js';
import type { OpaqueIds } from '../ehr/ids.js';
import { PATIENT_COMPARTMENT_TYPES, patientOf } from '../ehr/store/compartment.js';
import {
  AdviceMemory,
  applyCoverageInformation,
  validateResponse,
  type Card,
  type Problem,
  type SystemAction,
} from './answer/index.js';
import {
  applySharingPolicy,
  compilePolicy,
  judgeResource,
  type SharingPolicy,
  type Withheld,
} from './policy/index.js';
import { runPrefetch, shouldPost, type FhirReader } from './prefetch/index.js';
import {
  DiscoveryCache,
  getJson,
  postHook,
  RecentHooks,
  requestExtensions,
  serviceUrl,
  withDeadline,
  type DiscoveryService,
  type SigningKeys,
} from './transport/index.js';

/** A payer the EHR calls: how to recognise its coverage, where its CRD service is. */
export interface PayerEndpoint {
  /** The payer's key: its opaque ids (sec-7) and its client's `payer` at the EHR. */
  id: string;
  name: string;
  /** Identifiers of the payer (on `Coverage.payor` or its Organization) that select it. */
  identifiers: Array<{ system: string; value: string }>;
  /** The CDS Services base URL (discovery at `{cdsBaseUrl}/cds-services`). */
  cdsBaseUrl: string;
  /** The payer's CRD server as registered at the EHR's authorization server (hook tokens). */
  clientId: string;
  /** Extra trust anchors (PEM) for the payer's certificate. */
  ca?: string;
  /** Mutual TLS: the EHR's client certificate and key (PEM) for this payer. */
  tls?: { cert: string; key: string };
}

/** Mints and revokes `fhirAuthorization` tokens (the EHR's authorization server). */
export interface HookTokens {
  mint(input: HookTokenInput): Promise<FhirAuthorization>;
  revoke(accessToken: string): Promise<void>;
}

export interface CrdClientOptions {
  /** The EHR's CDS Hooks issuer, and the URL of its JWK Set (`jku`). */
  iss: string;
  jku?: string;
  keys: SigningKeys;
  /** The EHR's FHIR API as the payers reach it (`fhirServer`), and the client's own access. */
  fhirBase: string;
  fhir: FhirClient;
  /** Without it, calls carry no `fhirAuthorization` and the payer cannot query the EHR. */
  tokens?: HookTokens;
  /** Without it, payers see the EHR's ids (only for EHRs whose ids are already opaque). */
  ids?: OpaqueIds;
  policy: SharingPolicy;
  payers: PayerEndpoint[];
  audit?: AuditStore;
  instance: string;
  logger?: Logger;
  /** Past the deadline: abandon the call (default) or finish it in the background (found-7). */
  lateCalls?: 'abandon' | 'background';
  /** Called with a late answer when `lateCalls` is `background`. */
  onLate?: (result: PayerResult) => void;
  /** Overrides the hook deadlines of found-2 (5 or 10 s), in milliseconds. */
  deadlineMs?: number;
}

export type CrdHook =
  | 'order-sign'
  | 'order-select'
  | 'order-dispatch'
  | 'appointment-book'
  | 'encounter-start'
  | 'encounter-discharge';

/** One hook in the EHR's workflow, by the EHR's own (internal) ids. */
export interface HookCall {
  hook: CrdHook;
  patient: string;
  /** `Practitioner/123` or `PractitionerRole/123` (not for order-dispatch). */
  user?: string;
  encounter?: string;
  /** `DeviceRequest/1`, `Appointment/7`, …: the orders or appointments the hook is about. */
  orders?: string[];
  /** order-dispatch: the performer (`Organization/…`, `Practitioner/…`). */
  performer?: string;
  /** Leave prefetch out (a test of the payer querying the EHR instead). */
  noPrefetch?: boolean;
}

/** What one payer said (or why it said nothing). */
export interface PayerResult {
  payer: string;
  name: string;
  coverage: string;
  primary: boolean;
  status: 'done' | 'late' | 'error' | 'withheld' | 'no-service';
  error?: string;
  httpStatus?: number;
  hookInstance?: string;
  cards: Card[];
  /** Cards already shown for this patient in the last day (found-39), not repeated. */
  repeated: number;
  coverageInformation: Array<{ order: string; extension: Extension }>;
  /** Orders updated in the EHR with the coverage information (internal references). */
  applied: string[];
  dropped: Problem[];
  withheld: Withheld[];
  withheldOrders: string[];
}

export interface CallReport {
  hook: CrdHook;
  patient: string;
  /** The payers called, primary first (dev-32: shown together). */
  results: PayerResult[];
  /** Why no payer was called, when none was. */
  note?: string;
}

const SELF_PAY = new Set(['pay', 'SELFPAY']);
const ORDER_HOOKS = new Set(['order-sign', 'order-select', 'order-dispatch']);

/** A call that cannot be made as asked (unknown patient, order of another patient, …). */
export class CallError extends Error {
  override name = 'CallError';
}

/** Whether an order or appointment is about `patient` (its subject, patient or participant). */
function belongsTo(resource: Resource, patient: string): boolean {
  const r = resource as {
    subject?: { reference?: string };
    patient?: { reference?: string };
    participant?: Array<{ actor?: { reference?: string } }>;
  };
  const refs = [
    r.subject?.reference,
    r.patient?.reference,
    ...(r.participant ?? []).map((p) => p.actor?.reference),
  ];
  return refs.includes(`Patient/${patient}`);
}

/**
 * The resource types a payer's prefetch may name (the CRD key resources, found-25): a template
 * for anything else (Consent, Condition, Observation, …) is not run, and its type is not in the
 * call's token. The EHR decides what a payer may read, not the payer's discovery document.
 */
export const PAYER_READABLE_TYPES: ReadonlySet<string> = new Set([
  'Patient',
  'Encounter',
  'Coverage',
  'Device',
  'Medication',
  'Practitioner',
  'PractitionerRole',
  'Organization',
  'Location',
  'Appointment',
  ...ORDER_TYPES,
]);

/** The templates whose type a payer may read (a whole-context token such as `{{context.userId}}` has none and is kept). */
function readableTemplates(templates: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(templates).filter(([, t]) => {
      const type = templateResourceType(t);
      return type === undefined || PAYER_READABLE_TYPES.has(type);
    }),
  );
}

function split(reference: string): [string, string] {
  const [type, id] = reference.split('/') as [string, string];
  if (!type || !id) throw new TypeError(`not a reference: ${reference}`);
  return [type, id];
}

function matches(
  identifiers: Array<{ system?: string; value?: string }> | undefined,
  payer: PayerEndpoint,
): boolean {
  return (identifiers ?? []).some((i) =>
    payer.identifiers.some((p) => p.system === i.system && p.value === i.value),
  );
}

/** The EHR's CRD client; see the module comment. */
export class CrdClient {
  readonly #o: CrdClientOptions;
  readonly #discovery: DiscoveryCache;
  readonly #recent = new RecentHooks();
  readonly #advice = new AdviceMemory();

  /** found-39 across processes: the advice already shown (digests and times only). */
  get adviceShown(): Array<[string, number]> {
    return this.#advice.entries();
  }

  restoreAdviceShown(entries: Array<[string, number]>): void {
    this.#advice.restore(entries);
  }
  /** Coverage information kept for DTR and PAS (resp-46), by internal order reference. */
  readonly kept = new Map<string, Extension[]>();

  constructor(options: CrdClientOptions) {
    this.#o = options;
    this.#discovery = new DiscoveryCache({ fetch: (url) => this.#get(url) });
  }

  async #get(url: string): Promise<unknown> {
    const payer = this.#o.payers.find(
      (p) => url === `${p.cdsBaseUrl.replace(/\/+$/, '')}/cds-services`,
    );
    const jwt = await this.#o.keys.sign(url, { iss: this.#o.iss, ...this.#jku() });
    const res = await getJson(url, {
      jwt,
      signal: AbortSignal.timeout(10_000),
      ...(payer?.ca ? { ca: payer.ca } : {}),
      ...(payer?.tls ? { cert: payer.tls.cert, key: payer.tls.key } : {}),
    });
    if (res.status !== 200) throw new Error(`discovery answered ${res.status}`);
    return res.body;
  }

  #jku(): { jku?: string } {
    return this.#o.jku ? { jku: this.#o.jku } : {};
  }

  /** The services of each payer (found-16: cached for a day; found-17: refreshed after errors). */
  async discover(): Promise<Array<{ payer: string; services: DiscoveryService[] }>> {
    return Promise.all(
      this.#o.payers.map(async (p) => ({
        payer: p.id,
        services: (await this.#discovery.get(p.cdsBaseUrl)).services,
      })),
    );
  }

  /**
   * The client's reads for one call's prefetch, screened: only the CRD key resource types, only
   * this patient's data (and shared records), nothing the sharing policy withholds (recorded),
   * and search Bundles without their `link`s (which name the EHR's own ids and query values).
   * Dependent templates (`%key`, `resolve()`) therefore never see what may not leave.
   */
  #screenedReader(patient: string, consents: Consent[], payer: PayerEndpoint) {
    const o = this.#o;
    const policy = (this.#policy ??= compilePolicy(o.policy));
    const id = payer.identifiers[0];
    const withheld: Withheld[] = [];
    const allowed = (r: Resource): boolean => {
      if (!PAYER_READABLE_TYPES.has(r.resourceType)) return false;
      if (r.resourceType === 'Patient' ? r.id !== patient : !isMine(r, patient)) return false;
      const reasons = judgeResource(policy, r as never, {
        consents,
        payer: id ? { identifier: `${id.system}|${id.value}` } : {},
        now: new Date(),
      });
      for (const reason of reasons) {
        withheld.push({ reference: `${r.resourceType}/${r.id}`, ...reason });
      }
      return reasons.length === 0;
    };
    const screen = (value: Resource | null): Resource | null => {
      if (value === null) return null;
      if (value.resourceType !== 'Bundle') return allowed(value) ? value : null;
      const bundle = value as Bundle;
      const entry = (bundle.entry ?? []).filter((e) => e.resource && allowed(e.resource));
      return {
        resourceType: 'Bundle',
        type: bundle.type,
        ...(bundle.total !== undefined ? { total: entry.length } : {}),
        entry,
      } as Bundle;
    };
    const reader: FhirReader = {
      read: async (type, rid, signal) => {
        if (!PAYER_READABLE_TYPES.has(type))
          throw new CallError(`${type} is not readable by payers`);
        const found = await o.fhir.read(type, rid, signal);
        if (!found) return undefined;
        if (screen(found) === null) throw new CallError('withheld'); // omitted, never "no data"
        return found;
      },
      search: async (type, params, signal) => {
        if (!PAYER_READABLE_TYPES.has(type))
          throw new CallError(`${type} is not readable by payers`);
        const bundle = await o.fhir.searchBundle(type, params, signal, shouldPost(type, params));
        return screen(bundle) as Bundle;
      },
    };
    return { reader, screen, withheld };
  }

  #policy?: ReturnType<typeof compilePolicy>;

  /**
   * Applies coverage information to fresh copies of the orders, with `If-Match`, retrying once
   * when the order changed meanwhile (a clinician's edits are never overwritten). Only
   * assertions about `coverage` (this payer's) are taken (resp-48).
   */
  async #apply(
    orders: Resource[],
    actions: SystemAction[],
    sent: Resource[] | undefined,
    coverage: string,
  ) {
    const stored: string[] = [];
    let applied = applyCoverageInformation(orders, actions as never, {
      ...(sent ? { sent } : {}),
      coverage,
    });
    for (let attempt = 0; attempt < 2 && applied.updated.length > 0; attempt += 1) {
      const retry: Resource[] = [];
      for (const updated of applied.updated) {
        const fresh = await this.#o.fhir.read(
          updated.resourceType,
          updated.id!,
          AbortSignal.timeout(10_000),
        );
        if (!fresh) continue;
        const again = applyCoverageInformation([fresh], actions as never, {
          ...(sent ? { sent } : {}),
          coverage,
        }).updated[0];
        if (!again) continue;
        try {
          await this.#o.fhir.update(again, AbortSignal.timeout(10_000), fresh.meta?.versionId);
          stored.push(`${again.resourceType}/${again.id}`);
        } catch (err) {
          if ((err as { status?: number }).status === 412) retry.push(fresh);
          else throw err;
        }
      }
      if (retry.length === 0) break;
      applied = { ...applied, updated: retry };
    }
    return { ...applied, stored };
  }

  /** Active coverages with a known payer, primary first (dev-26, dev-28); self-pay excluded. */
  async #coverages(patient: string, signal: AbortSignal) {
    const bundle = (await this.#o.fhir.searchBundle(
      'Coverage',
      new URLSearchParams({ patient, status: 'active' }),
      signal,
    )) as Bundle<Coverage>;
    const found: Array<{ coverage: Coverage; payer: PayerEndpoint }> = [];
    for (const entry of bundle.entry ?? []) {
      const coverage = entry.resource;
      if (coverage?.resourceType !== 'Coverage' || coverage.status !== 'active') continue;
      const selfPay =
        coverage.type?.coding?.some((c) => SELF_PAY.has(c.code ?? '')) ||
        coverage.payor?.some((p) => p.reference?.startsWith('Patient/'));
      if (selfPay) continue;
      const payer = await this.#payerOf(coverage, signal);
      if (payer) found.push({ coverage, payer });
    }
    return found.sort((a, b) => (a.coverage.order ?? Infinity) - (b.coverage.order ?? Infinity));
  }

  async #payerOf(coverage: Coverage, signal: AbortSignal): Promise<PayerEndpoint | undefined> {
    for (const payor of coverage.payor ?? []) {
      const byIdentifier = this.#o.payers.find((p) =>
        matches(payor.identifier ? [payor.identifier] : [], p),
      );
      if (byIdentifier) return byIdentifier;
      if (payor.reference?.startsWith('Organization/')) {
        const [, id] = split(payor.reference);
        const org = (await this.#o.fhir.read('Organization', id, signal)) as Organization | null;
        const byOrg = this.#o.payers.find((p) => matches(org?.identifier, p));
        if (byOrg) return byOrg;
      }
    }
    return undefined;
  }

  /**
   * Runs one hook: every payer with active coverage is called in parallel (dev-32), coverage
   * information switched off for all but the primary (dev-30). Never throws for a payer's
   * failure: each result says what happened.
   */
  async call(call: HookCall): Promise<CallReport> {
    const signal = AbortSignal.timeout(30_000);
    // Checked before any payer is contacted: the call is about this patient and these orders.
    if (!(await this.#o.fhir.read('Patient', call.patient, signal))) {
      throw new CallError(`Patient/${call.patient} not found in the EHR`);
    }
    if (ORDER_HOOKS.has(call.hook) || call.hook === 'appointment-book') {
      if (!call.orders?.length) throw new CallError(`${call.hook} needs at least one order`);
    }
    const orders = await Promise.all(
      (call.orders ?? []).map(async (ref) => {
        const [type, id] = split(ref);
        const resource = await this.#o.fhir.read(type, id, signal);
        if (!resource) throw new CallError(`${ref} not found in the EHR`);
        if (!belongsTo(resource, call.patient)) {
          throw new CallError(`${ref} is not an order of Patient/${call.patient}`);
        }
        return resource;
      }),
    );
    if (call.user) {
      const [type, id] = split(call.user);
      if (!/^(Practitioner|PractitionerRole)$/.test(type)) {
        throw new CallError('the user must be a Practitioner or PractitionerRole');
      }
      if (!(await this.#o.fhir.read(type, id, signal))) {
        throw new CallError(`${call.user} not found in the EHR`);
      }
    }
    const coverages = await this.#coverages(call.patient, signal);
    if (coverages.length === 0) {
      return {
        hook: call.hook,
        patient: call.patient,
        results: [],
        note: 'no active coverage with a configured payer (dev-26): no CRD call',
      };
    }
    // The user in context: given, or else the clinician who requested the first order.
    if (!call.user && call.hook !== 'order-dispatch') {
      const requester = (orders[0] as { requester?: { reference?: string } } | undefined)?.requester
        ?.reference;
      if (requester && /^(Practitioner|PractitionerRole)\/[^/]+$/.test(requester)) {
        call = { ...call, user: requester };
      } else {
        throw new Error(
          `${call.hook} needs the user in context (a Practitioner or PractitionerRole)`,
        );
      }
    }
    // The patient's privacy Consents, read once for every payer of this call.
    const consents = (
      (
        (await this.#o.fhir.searchBundle(
          'Consent',
          new URLSearchParams({ patient: call.patient, status: 'active' }),
          signal,
        )) as Bundle
      ).entry ?? []
    )
      .map((e) => e.resource)
      .filter((r): r is Consent => r?.resourceType === 'Consent');
    const results = await Promise.all(
      coverages.map(({ coverage, payer }, i) =>
        this.#callPayer(call, payer, coverage, i === 0, orders, consents).catch(
          (err: Error): PayerResult => ({
            ...emptyResult(payer, coverage, i === 0),
            status: 'error',
            error: err.message,
          }),
        ),
      ),
    );
    return { hook: call.hook, patient: call.patient, results };
  }

  async #callPayer(
    call: HookCall,
    payer: PayerEndpoint,
    coverage: Coverage,
    primary: boolean,
    orders: Resource[],
    consents: Consent[],
  ): Promise<PayerResult> {
    const o = this.#o;
    const result = emptyResult(payer, coverage, primary);
    const subject = { patient: call.patient };
    const deadline = o.deadlineMs ?? this.#recent.deadlineMs(call.hook, subject);
    this.#recent.record(subject);
    const started = Date.now();
    // found-2: discovery counts against the hook's deadline too (a slow payer cannot stall us).
    const discovery = await Promise.race([
      this.#discovery.get(payer.cdsBaseUrl),
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), deadline).unref()),
    ]);
    if (!discovery) return { ...result, status: 'late', error: 'discovery did not answer in time' };
    const service = discovery.services.find((s) => s.hook === call.hook);
    if (!service) return { ...result, status: 'no-service' };
    const url = serviceUrl(payer.cdsBaseUrl, service);
    const templates = readableTemplates(service.prefetch);
    const hookInstance = randomUUID();
    const extension = requestExtensions(service, {
      supportedVersions: SUPPORTED_VERSIONS,
      // dev-30: only the primary payer is asked for coverage information.
      ...(primary ? {} : { configuration: { 'coverage-info': false } }),
    });

    // Context and prefetch, by the EHR's own ids, then the sharing policy (the final arbiter).
    const context = buildContext(call, orders, o.fhirBase);
    const screened = this.#screenedReader(call.patient, consents, payer);
    const prefetch = call.noPrefetch
      ? { prefetch: {}, failed: [] }
      : await runPrefetch(
          {
            templates,
            context,
            ...(call.user ? { user: call.user } : {}),
            primaryCoverage: coverage,
            deadlineMs: Math.max(500, Math.floor(deadline / 3)),
            fhirBase: o.fhirBase,
            // Dependent templates (%key) see only what may leave.
            screen: (value) => screened.screen(value),
          },
          screened.reader,
        );
    const shared = applySharingPolicy(o.policy, {
      context,
      // Already screened by the reader: this patient's data and shared records only.
      prefetch: prefetch.prefetch,
      consents,
      payer: { identifier: `${payer.identifiers[0]?.system}|${payer.identifiers[0]?.value}` },
    });
    result.withheld = [...screened.withheld, ...shared.withheld];
    result.withheldOrders = shared.withheldOrders;
    if (shared.outcome === 'withheld-order') {
      await this.#audit(call, payer, service.id, url, hookInstance, {
        status: 0,
        withheld: result.withheld,
      });
      return { ...result, status: 'withheld' };
    }

    // sec-7: what leaves carries the payer's opaque ids.
    const out = <T>(value: T): T => (o.ids ? o.ids.outgoing(payer.id, value as never) : value);
    const opaque = (type: string, id: string) => (o.ids ? o.ids.toOpaque(payer.id, type, id) : id);
    const sentContext = mapContext(shared.context, opaque, out);
    const sentPrefetch = Object.fromEntries(
      Object.entries(shared.prefetch).map(([k, v]) => [k, v === null ? null : out(v)]),
    );

    let auth: FhirAuthorization | undefined;
    if (o.tokens) {
      auth = await o.tokens.mint({
        clientId: payer.clientId,
        patient: call.patient,
        ...(call.encounter ? { encounter: call.encounter } : {}),
        service: service.id,
        declaredTypes: prefetchResourceTypes(templates),
        hookInstance,
      });
    }
    const body = {
      hook: call.hook,
      hookInstance,
      fhirServer: o.fhirBase,
      ...(auth ? { fhirAuthorization: { ...auth, patient: opaque('Patient', auth.patient) } } : {}),
      context: sentContext,
      prefetch: sentPrefetch,
      extension,
    };
    const requestBytes = Buffer.from(JSON.stringify(body));
    const sentOrders = (shared.context.draftOrders as Bundle | undefined)?.entry?.map(
      (e) => e.resource as Resource,
    );

    const finish = async (
      res: { status: number; body: unknown } | undefined,
      error?: string,
    ): Promise<PayerResult> => {
      if (auth) await o.tokens!.revoke(auth.access_token).catch(() => undefined);
      const r = { ...result, hookInstance };
      if (!res || res.status !== 200) {
        this.#discovery.invalidate(payer.cdsBaseUrl); // found-17
        await this.#audit(call, payer, service.id, url, hookInstance, {
          status: res?.status ?? 0,
          requestBytes,
          withheld: result.withheld,
        });
        return {
          ...r,
          status: 'error',
          ...(res ? { httpStatus: res.status } : {}),
          error: error ?? `the payer answered ${res?.status}${outcomeText(res?.body)}`,
        };
      }
      // found-37: the exchange is recorded as received, before anything else can fail.
      const responseBytes = Buffer.from(JSON.stringify(res.body));
      await this.#audit(call, payer, service.id, url, hookInstance, {
        status: 200,
        requestBytes,
        responseBytes,
        withheld: result.withheld,
      });
      const sentRefs = orders.map((x) => ({
        resourceType: x.resourceType,
        id: opaque(x.resourceType, x.id!),
      }));
      const valid = validateResponse(res.body, { hook: call.hook, orders: sentRefs });
      let mapped: typeof valid.systemActions;
      try {
        mapped = valid.systemActions.map((a) =>
          a.resource && o.ids
            ? { ...a, resource: o.ids.incoming(payer.id, a.resource as never) }
            : a,
        );
      } catch {
        // An id this payer was never given: nothing of the answer is applied (sec-7).
        mapped = [];
        valid.dropped.push({ where: 'systemActions', reason: 'names an id never sent' });
      }
      // dev-30: a secondary payer's coverage information is never applied.
      const actions = primary ? mapped : [];
      if (!primary && mapped.length) {
        valid.dropped.push({ where: 'systemActions', reason: 'secondary payer (dev-30)' });
      }
      const applied = await this.#apply(orders, actions, sentOrders, `Coverage/${coverage.id}`);
      r.applied.push(...applied.stored);
      for (const ci of applied.coverageInformation) {
        this.kept.set(ci.order, [...(this.kept.get(ci.order) ?? []), ci.extension]);
      }
      const fresh = this.#advice.seen(`${payer.id}|${call.patient}`, valid.cards);
      for (const d of [...valid.dropped, ...applied.rejected]) {
        o.logger?.warn(
          { payer: payer.id, where: d.where, reason: d.reason },
          'payer advice dropped',
        );
      }
      return {
        ...r,
        status: 'done',
        httpStatus: 200,
        cards: fresh,
        repeated: valid.cards.length - fresh.length,
        coverageInformation: applied.coverageInformation,
        dropped: [...valid.dropped, ...applied.rejected],
      };
    };

    const remaining = Math.max(100, deadline - (Date.now() - started));
    const send = async (sig: AbortSignal) => {
      const jwt = await o.keys.sign(url, { iss: o.iss, ...this.#jku() });
      return postHook(url, body, {
        jwt,
        signal: sig,
        ...(payer.ca ? { ca: payer.ca } : {}),
        ...(payer.tls ? { cert: payer.tls.cert, key: payer.tls.key } : {}),
      });
    };
    let outcome;
    try {
      outcome = await withDeadline(
        send,
        remaining,
        o.lateCalls === 'background'
          ? (late) =>
              void finish(late).then(
                (r) => o.onLate?.(r),
                () => undefined,
              )
          : undefined,
        {
          // A late call that fails in the background still ends its token and is recorded.
          onLateError: (err) =>
            void finish(undefined, (err as Error).message).catch(() => undefined),
        },
      );
    } catch (err) {
      return finish(undefined, (err as Error).message);
    }
    if (outcome.status === 'late') {
      // found-3, found-6: the clinician is not kept waiting; an abandoned call is recorded.
      if (o.lateCalls !== 'background') {
        if (auth) await o.tokens!.revoke(auth.access_token).catch(() => undefined);
        await this.#audit(call, payer, service.id, url, hookInstance, {
          status: 0,
          requestBytes,
          withheld: result.withheld,
        }).catch(() => undefined);
      }
      return { ...result, hookInstance, status: 'late' };
    }
    return finish(outcome.value);
  }

  async #audit(
    call: HookCall,
    payer: PayerEndpoint,
    service: string,
    url: string,
    hookInstance: string,
    what: {
      status: number;
      requestBytes?: Buffer;
      responseBytes?: Buffer;
      withheld: Withheld[];
      assertionIds?: string[];
    },
  ): Promise<void> {
    if (!this.#o.audit) return;
    await this.#o.audit.appendHook({
      at: new Date(),
      instance: this.#o.instance,
      client: { iss: this.#o.iss, name: `CRD client → ${payer.name}` },
      service,
      hook: call.hook,
      hookInstance,
      patient: `Patient/${call.patient}`,
      orders: call.orders ?? [],
      coverageAssertionIds: what.assertionIds ?? [],
      status: what.status || 100,
      outcome:
        what.status === 200 ? 'success' : what.status === 0 ? 'minor-failure' : 'serious-failure',
      destination: url,
      withheld: what.withheld.map((w) => ({ reference: w.reference, reason: w.reason })),
      ...(what.requestBytes ? { requestBody: what.requestBytes } : {}),
      ...(what.responseBytes ? { responseBody: what.responseBytes } : {}),
    });
  }
}

/** The first issue of an OperationOutcome answer, for the clinician's message. */
function outcomeText(body: unknown): string {
  const issue = (
    body as {
      resourceType?: string;
      issue?: Array<{ details?: { text?: string }; diagnostics?: string }>;
    }
  )?.issue?.[0];
  const text = issue?.details?.text ?? issue?.diagnostics;
  return typeof text === 'string' ? `: ${text.slice(0, 200)}` : '';
}

function emptyResult(payer: PayerEndpoint, coverage: Coverage, primary: boolean): PayerResult {
  return {
    payer: payer.id,
    name: payer.name,
    coverage: `Coverage/${coverage.id}`,
    primary,
    status: 'done',
    cards: [],
    repeated: 0,
    coverageInformation: [],
    applied: [],
    dropped: [],
    withheld: [],
    withheldOrders: [],
  };
}

/** Whether a resource is this patient's, or a shared record outside any patient compartment. */
function isMine(r: Resource, patient: string): boolean {
  const owner = patientOf(r);
  return owner === undefined ? !PATIENT_COMPARTMENT_TYPES.has(r.resourceType) : owner === patient;
}

/** The hook context by the EHR's own ids (CDS Hooks library v1.0.1 context fields). */
function buildContext(
  call: HookCall,
  orders: Resource[],
  fhirBase: string,
): Record<string, unknown> {
  const bundle = (): Bundle => ({
    resourceType: 'Bundle',
    type: 'collection',
    entry: orders.map((r) => ({ fullUrl: `${fhirBase}/${r.resourceType}/${r.id}`, resource: r })),
  });
  const base = {
    ...(call.user && call.hook !== 'order-dispatch' ? { userId: call.user } : {}),
    patientId: call.patient,
    ...(call.encounter && call.hook !== 'order-dispatch' ? { encounterId: call.encounter } : {}),
  };
  switch (call.hook) {
    case 'order-sign':
      return { ...base, draftOrders: bundle() };
    case 'order-select':
      return {
        ...base,
        draftOrders: bundle(),
        selections: orders.map((r) => `${r.resourceType}/${r.id}`),
      };
    case 'order-dispatch':
      return {
        ...base,
        dispatchedOrders: orders.map((r) => `${r.resourceType}/${r.id}`),
        ...(call.performer ? { performer: call.performer } : {}),
      };
    case 'appointment-book':
      return { ...base, appointments: bundle() };
    default:
      return base;
  }
}

/** The context with the payer's ids: plain ids, references and Bundles all mapped (sec-7). */
function mapContext(
  context: Record<string, unknown>,
  opaque: (type: string, id: string) => string,
  out: <T>(value: T) => T,
): Record<string, unknown> {
  const ref = (value: unknown) => {
    if (typeof value !== 'string' || !value.includes('/')) return value;
    const [type, id] = split(value);
    return `${type}/${opaque(type, id)}`;
  };
  const mapped: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(context)) {
    if (key === 'patientId') mapped[key] = opaque('Patient', value as string);
    else if (key === 'encounterId') mapped[key] = opaque('Encounter', value as string);
    else if (key === 'userId' || key === 'performer') mapped[key] = ref(value);
    else if (Array.isArray(value)) mapped[key] = value.map(ref);
    else if (value && typeof value === 'object') mapped[key] = out(value);
    else mapped[key] = value;
  }
  return mapped;
}

/** The CRD client of {@link CrdClientOptions}: `createCrdClient(options).call({ hook, … })`. */
export function createCrdClient(options: CrdClientOptions): CrdClient {
  return new CrdClient(options);
}
