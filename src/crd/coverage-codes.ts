/** The code lists and systems of the Coverage Information extension (CRD §3.3). */
import type {
  CoverageDetail,
  Covered,
  DocNeeded,
  DocPurpose,
  InfoNeeded,
  PaNeeded,
  ReasonCode,
} from './types.js';

/** Canonical URL of the extension. */
export const COVERAGE_INFORMATION_URL =
  'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information';
/** System of the `coverageAssertionReasons` codes (CRD `CodeSystem/temp`). */
export const CRD_TEMP_SYSTEM = 'http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp';
/** System of the coverage-detail codes (`ValueSet/coverageDetailNew`). */
export const COVERAGE_DETAIL_SYSTEM = 'http://terminology.hl7.org/CodeSystem/crd-coverage-detail';

/** `ValueSet/coverageInfo` (required binding of `covered`), in the IG's order. */
export const COVERED_CODES: readonly Covered[] = [
  'covered',
  'not-covered',
  'conditional',
  'indeterminate',
];
/** `ValueSet/coveragePaDetail` (`pa-needed`). */
export const PA_NEEDED_CODES: readonly PaNeeded[] = [
  'no-auth',
  'auth-needed',
  'satisfied',
  'performpa',
  'conditional',
  'indeterminate',
];
/** `ValueSet/AdditionalDocumentation` (`doc-needed`). */
export const DOC_NEEDED_CODES: readonly DocNeeded[] = [
  'clinical',
  'admin',
  'patient',
  'conditional',
  'indeterminate',
];
/** `ValueSet/DocReason` (`doc-purpose`; `OTH` is v3-NullFlavor). */
export const DOC_PURPOSE_CODES: readonly DocPurpose[] = [
  'withpa',
  'withclaim',
  'withorder',
  'retain-doc',
  'OTH',
];
/** `ValueSet/informationNeeded` (`info-needed`; `OTH` is v3-NullFlavor). */
export const INFO_NEEDED_CODES: readonly InfoNeeded[] = [
  'performer',
  'location',
  'timeframe',
  'contract-window',
  'detail-code',
  'OTH',
];
/** `ValueSet/coverageDetailCategories` (`detail.category`). */
export const DETAIL_CATEGORIES = ['cat-limitation', 'cat-decisional', 'cat-other'] as const;

/** `coverageAssertionReasons` (extensible) with the CodeSystem displays. */
export const REASON_DISPLAY: Readonly<Record<ReasonCode, string>> = {
  'gold-card': 'Gold card',
  'no-member-found': 'Member not found',
  'no-active-coverage': 'Coverage not active',
  'coverage-not-found': 'Coverage not found',
  'auth-out-network': 'Authorization needed out-of-network',
  technical: 'Technical issues',
};

/**
 * `crd-coverage-detail` codes with their category (`undefined`: any category) and the value
 * type the CodeSystem says the value "should be".
 */
export const DETAIL_CODES: Readonly<
  Record<string, { category?: CoverageDetail['category']; value: DetailValueKind }>
> = {
  'allowed-quantity': { category: 'cat-limitation', value: 'quantity' },
  'allowed-period': { category: 'cat-limitation', value: 'period' },
  'in-network-copay': { category: 'cat-decisional', value: 'quantity' },
  'out-network-copay': { category: 'cat-decisional', value: 'quantity' },
  'concurrent-review': { category: 'cat-decisional', value: 'boolean' },
  'appropriate-use-needed': { category: 'cat-decisional', value: 'boolean' },
  'policy-link': { category: 'cat-other', value: 'url' },
  instructions: { value: 'string' },
};

/** The value[x] kinds a detail can carry. */
export type DetailValueKind = 'boolean' | 'string' | 'url' | 'quantity' | 'period';
