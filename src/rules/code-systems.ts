/**
 * Code-system names and equivalences for rule matching. EHRs spell some systems differently
 * (the IG's own oxygen example uses the CMS HCPCS release page URL instead of the
 * `bluebutton` canonical), so a rule's system matches every known spelling.
 */
import type { Coding } from '../crd/types.js';
import type { CodeMatcher } from './schema.js';

/** Short names usable as `system:` in a rules file; the first URL is the one emitted. */
export const SYSTEM_ALIASES: Readonly<Record<string, readonly string[]>> = {
  hcpcs: [
    'https://bluebutton.cms.gov/resources/codesystem/hcpcs',
    'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets',
    'http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets',
    'urn:oid:2.16.840.1.113883.6.285',
  ],
  cpt: ['http://www.ama-assn.org/go/cpt', 'urn:oid:2.16.840.1.113883.6.12'],
  rxnorm: ['http://www.nlm.nih.gov/research/umls/rxnorm', 'urn:oid:2.16.840.1.113883.6.88'],
  snomed: ['http://snomed.info/sct', 'urn:oid:2.16.840.1.113883.6.96'],
  loinc: ['http://loinc.org', 'urn:oid:2.16.840.1.113883.6.1'],
  ndc: ['http://hl7.org/fhir/sid/ndc', 'urn:oid:2.16.840.1.113883.6.69'],
  icd10pcs: ['http://www.cms.gov/Medicare/Coding/ICD10', 'urn:oid:2.16.840.1.113883.6.4'],
  'service-type': ['http://terminology.hl7.org/CodeSystem/service-type'],
};

/**
 * The equivalence class of `system` (an alias or a URI), canonical URL first, or undefined
 * when `system` is neither an alias nor an absolute URI.
 */
export function systemsFor(system: string): readonly string[] | undefined {
  const alias = SYSTEM_ALIASES[system];
  if (alias !== undefined) return alias;
  if (!/^(https?:\/\/[^\s]+|urn:(oid|uuid):[^\s]+)$/.test(system)) return undefined;
  for (const list of Object.values(SYSTEM_ALIASES)) if (list.includes(system)) return list;
  return [system];
}

/** True when `coding` is one of the codes `m` describes. */
export function matches(m: CodeMatcher, coding: Coding): boolean {
  if (coding.system === undefined || coding.code === undefined) return false;
  if (!m.systems.includes(coding.system)) return false;
  if (m.codes?.has(coding.code) === true) return true;
  const r = m.range;
  return (
    r !== undefined &&
    coding.code.length === r.from.length &&
    coding.code >= r.from &&
    coding.code <= r.to
  );
}

/** True when any of `codings` matches any matcher (an empty matcher list matches nothing). */
export function anyMatch(matchers: readonly CodeMatcher[], codings: readonly Coding[]): boolean {
  return matchers.some((m) => codings.some((c) => matches(m, c)));
}
