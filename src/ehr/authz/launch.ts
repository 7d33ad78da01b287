/**
 * SMART EHR launch (sec-4): the EHR records the launch context and hands the app an opaque
 * `launch` value; the app sends it back at the authorization endpoint with the `launch` scope.
 * A launch value is random (256 bits), stored only as a hash, bound to the one client it was
 * created for, usable once and for five minutes. When the user approves, its context is bound
 * to the new grant, and every access token of that grant carries it (token response `patient`,
 * `encounter`, `fhirContext`, `appContext`; the resolver's `AccessGrant`).
 */
import { randomBytes } from 'node:crypto';
import { errors, type AdapterPayload } from 'oidc-provider';
import type { StateAdapter } from './state/backend.js';
import type { EhrClient, EhrUser, FhirContextItem, LaunchContext } from './types.js';

/** How long a launch value can be redeemed, in seconds. */
export const LAUNCH_TTL = 300;

const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
const MAX_APP_CONTEXT = 8192;
const MAX_FHIR_CONTEXT = 16;

/** What a launch record holds. */
export interface StoredLaunch {
  clientId: string;
  patient: string;
  encounter?: string;
  appContext?: string;
  fhirContext?: FhirContextItem[];
  user?: string;
  /** Epoch seconds. */
  exp: number;
}

/** The context a grant keeps from its launch. */
export type GrantLaunchContext = Pick<
  StoredLaunch,
  'patient' | 'encounter' | 'appContext' | 'fhirContext'
>;

const text = (v: unknown, max = 2048): boolean =>
  typeof v === 'string' && v.length > 0 && v.length <= max;

function checkFhirContext(items: unknown): FhirContextItem[] | undefined {
  if (items === undefined) return undefined;
  if (!Array.isArray(items) || items.length > MAX_FHIR_CONTEXT) {
    throw new TypeError(
      `createLaunch: "fhirContext" must be a list of at most ${MAX_FHIR_CONTEXT}`,
    );
  }
  for (const item of items as FhirContextItem[]) {
    const ok =
      item !== null &&
      typeof item === 'object' &&
      (text(item.reference) || text(item.canonical) || text(item.identifier?.value)) &&
      (item.type === undefined || text(item.type, 64)) &&
      (item.role === undefined || text(item.role));
    if (!ok) throw new TypeError('createLaunch: "fhirContext" items need a reference');
  }
  return items as FhirContextItem[];
}

/** The launch records and the launch context of grants, on the shared state backend. */
export class Launches {
  constructor(
    private readonly launches: StateAdapter,
    private readonly contexts: StateAdapter,
    private readonly clients: ReadonlyMap<string, EhrClient>,
    private readonly users: ReadonlyMap<string, EhrUser>,
    private readonly now: () => Date,
  ) {}

  #seconds(): number {
    return Math.floor(this.now().getTime() / 1000);
  }

  /** Checks `context`, stores it and returns the new `launch` value. */
  async create(context: LaunchContext): Promise<{ value: string; launch: StoredLaunch }> {
    const client = this.clients.get(context.clientId);
    if (!client) throw new TypeError('createLaunch: "clientId" is not a registered client');
    if (!client.launchable || client.kind === 'public') {
      throw new TypeError('createLaunch: the client is not a launchable confidential client');
    }
    if (!FHIR_ID.test(context.patient ?? '')) {
      throw new TypeError('createLaunch: "patient" must be a FHIR id');
    }
    if (context.encounter !== undefined && !FHIR_ID.test(context.encounter)) {
      throw new TypeError('createLaunch: "encounter" must be a FHIR id');
    }
    if (context.appContext !== undefined && !text(context.appContext, MAX_APP_CONTEXT)) {
      throw new TypeError(`createLaunch: "appContext" must be 1 to ${MAX_APP_CONTEXT} characters`);
    }
    if (context.user !== undefined && !this.users.has(context.user)) {
      throw new TypeError('createLaunch: "user" is not a known user');
    }
    const fhirContext = checkFhirContext(context.fhirContext);
    const launch: StoredLaunch = {
      clientId: client.clientId,
      patient: context.patient,
      ...(context.encounter ? { encounter: context.encounter } : {}),
      ...(context.appContext ? { appContext: context.appContext } : {}),
      ...(fhirContext ? { fhirContext } : {}),
      ...(context.user ? { user: context.user } : {}),
      exp: this.#seconds() + LAUNCH_TTL,
    };
    const value = randomBytes(32).toString('base64url');
    await this.launches.upsert(value, launch as unknown as AdapterPayload, LAUNCH_TTL);
    return { value, launch };
  }

  /** The launch `value` names when it is live, unused and for `clientId`; else undefined. */
  async find(value: string, clientId: string): Promise<StoredLaunch | undefined> {
    if (typeof value !== 'string' || !/^[A-Za-z0-9_-]{20,128}$/.test(value)) return undefined;
    const found = (await this.launches.find(value)) as (StoredLaunch & AdapterPayload) | undefined;
    if (!found || found.consumed || found.exp <= this.#seconds()) return undefined;
    return found.clientId === clientId ? found : undefined;
  }

  /** Redeems `value` once (atomic across instances); undefined when it cannot be. */
  async redeem(value: string, clientId: string): Promise<StoredLaunch | undefined> {
    const launch = await this.find(value, clientId);
    if (!launch) return undefined;
    try {
      await this.launches.consume(value);
    } catch (err) {
      if (err instanceof errors.InvalidGrant) return undefined;
      throw err;
    }
    return launch;
  }

  /** Binds the context of `launch` to the grant `grantId` for `ttl` seconds. */
  async bind(grantId: string, launch: StoredLaunch, ttl: number): Promise<void> {
    const context: GrantLaunchContext = {
      patient: launch.patient,
      ...(launch.encounter ? { encounter: launch.encounter } : {}),
      ...(launch.appContext ? { appContext: launch.appContext } : {}),
      ...(launch.fhirContext ? { fhirContext: launch.fhirContext } : {}),
    };
    await this.contexts.upsert(grantId, context as unknown as AdapterPayload, ttl);
  }

  /** The launch context bound to `grantId`, if any. */
  async forGrant(grantId: string): Promise<GrantLaunchContext | undefined> {
    const found = await this.contexts.find(grantId);
    return found ? (found as unknown as GrantLaunchContext) : undefined;
  }
}
