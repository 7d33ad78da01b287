/**
 * dev-29: the Coverage in prefetch is "limited to a single instance reflecting the coverage
 * relevant to the requests", the primary coverage the client chose (dev-28), even though the
 * standard template asks for every active one (`Coverage?patient=…&status=active`). Other
 * coverages name other payers and plans: they are never sent.
 */
import type { Bundle, BundleEntry } from '@medplum/fhirtypes';

/**
 * The template's search with `_id={primary id}` added: the EHR answers with the primary
 * coverage when it matches the template's criteria, and with nothing otherwise. (Two `_id`
 * parameters are both applied, so a template's own `_id` still counts.)
 */
export function primaryCoverageParams(params: URLSearchParams, primaryId: string): URLSearchParams {
  const out = new URLSearchParams(params);
  out.append('_id', primaryId);
  return out;
}

/**
 * A searchset with at most the primary coverage, whatever else the EHR returned (a server that
 * ignores `_id` must not leak the others). Paging links are dropped: there is no next page.
 */
export function onlyPrimary(bundle: Bundle, primaryId: string): Bundle {
  const entry: BundleEntry[] = (bundle.entry ?? [])
    .filter((e) => e.resource?.resourceType === 'Coverage' && e.resource.id === primaryId)
    .slice(0, 1);
  const result: Bundle = { resourceType: 'Bundle', type: 'searchset', total: entry.length };
  if (entry.length > 0) result.entry = entry;
  return result;
}
