/**
 * The ids one token sees: a payer's tokens see opaque ids (sec-7), the EHR's own apps (grants
 * without `payer`) see internal ids. Every id that crosses the API goes through one view.
 */
import type { Resource } from '@medplum/fhirtypes';
import type { AccessGrant } from '../types.js';
import { FHIR_ID, type OpaqueIds } from '../ids.js';

export interface IdView {
  /** The payer whose ids these are, or undefined for internal ids. */
  payer?: string;
  /** The internal id of `type`'s `id` as the client knows it; undefined when unknown. */
  internal(type: string, id: string): string | undefined;
  /** The id the client sees for an internal id. */
  external(type: string, id: string): string;
  /** A resource (or search Bundle) as the client sees it. */
  outgoing<T extends Resource>(resource: T): T;
  /** A resource received from the client, made internal (`OpaqueIdError` for unknown ids). */
  incoming<T extends Resource>(resource: T): T;
}

/** The view of `grant`. */
export function idView(ids: OpaqueIds, grant: AccessGrant): IdView {
  const payer = grant.payer;
  if (!payer) {
    return {
      internal: (_type, id) => (FHIR_ID.test(id) ? id : undefined),
      external: (_type, id) => id,
      outgoing: (r) => r,
      incoming: (r) => r,
    };
  }
  return {
    payer,
    internal: (type, id) => ids.toInternal(payer, type, id),
    external: (type, id) => ids.toOpaque(payer, type, id),
    outgoing: (r) => ids.outgoing(payer, r),
    incoming: (r) => ids.incoming(payer, r),
  };
}
