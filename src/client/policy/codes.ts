/**
 * Comparing codings with policy code lists. Matching leans towards withholding: aliases of a
 * system are one system, case is ignored, ICD-10 dots are ignored, and a coding without a system
 * is compared by code alone.
 */
import type { PolicyCoding } from './types.js';

const THO = 'http://terminology.hl7.org/CodeSystem/';
const ICD10CM = 'http://hl7.org/fhir/sid/icd-10-cm';
const HCPCS = 'http://www.cms.gov/medicare/coding/hcpcsreleasecodesets';

/** Other spellings of the systems the policy uses, lower case, to their canonical URL. */
const ALIASES: Record<string, string> = {
  'http://hl7.org/fhir/v3/confidentiality': `${THO}v3-Confidentiality`,
  'urn:oid:2.16.840.1.113883.5.25': `${THO}v3-Confidentiality`,
  'http://hl7.org/fhir/v3/actcode': `${THO}v3-ActCode`,
  'urn:oid:2.16.840.1.113883.5.4': `${THO}v3-ActCode`,
  'http://hl7.org/fhir/v3/actreason': `${THO}v3-ActReason`,
  'urn:oid:2.16.840.1.113883.5.8': `${THO}v3-ActReason`,
  'http://hl7.org/fhir/v3/observationvalue': `${THO}v3-ObservationValue`,
  'urn:oid:2.16.840.1.113883.5.83': `${THO}v3-ObservationValue`,
  // WHO ICD-10 shares the chapters and 3-character categories the lists use.
  'http://hl7.org/fhir/sid/icd-10': ICD10CM,
  'urn:oid:2.16.840.1.113883.6.90': ICD10CM,
  'urn:oid:2.16.840.1.113883.6.3': ICD10CM,
  'urn:oid:2.16.840.1.113883.6.96': 'http://snomed.info/sct',
  'urn:oid:2.16.840.1.113883.6.1': 'http://loinc.org',
  'urn:oid:2.16.840.1.113883.6.88': 'http://www.nlm.nih.gov/research/umls/rxnorm',
  'urn:oid:2.16.840.1.113883.6.12': 'http://www.ama-assn.org/go/cpt',
  'https://www.cms.gov/medicare/coding/hcpcsreleasecodesets': HCPCS,
  'https://bluebutton.cms.gov/resources/codesystem/hcpcs': HCPCS,
  'urn:oid:2.16.840.1.113883.6.285': HCPCS,
};

/** The system as compared: lower case, no trailing slash, aliases resolved. */
export function canonicalSystem(system: string): string {
  const plain = system.trim().replace(/\/+$/, '').toLowerCase();
  return (ALIASES[plain] ?? plain).toLowerCase();
}

const dotless = new Set([ICD10CM.toLowerCase()]);

/** The code as compared: upper case; without dots in ICD-10 systems. */
export function canonicalCode(system: string | undefined, code: string): string {
  const upper = code.trim().toUpperCase();
  return system !== undefined && dotless.has(canonicalSystem(system))
    ? upper.replace(/\./g, '')
    : upper;
}

/** `v3-ActCode#ETH`: the last path segment of the system and the code, for `Withheld.detail`. */
export function labelName(coding: { system?: string; code: string }): string {
  const system = coding.system ? (ALIASES[coding.system.toLowerCase()] ?? coding.system) : '';
  const short = system.replace(/\/+$/, '').split(/[/:]/).pop() ?? '';
  return `${short}#${coding.code}`;
}

/** A coding found in a resource. */
export interface FoundCoding {
  system?: string;
  code: string;
}

/** A compiled code list: exact codes and prefixes by canonical system. */
export class CodeList {
  private readonly exact = new Map<string, Map<string, PolicyCoding>>();
  private readonly prefixes = new Map<string, Array<[string, PolicyCoding]>>();
  private readonly all: Array<{ code: string; prefix: boolean; entry: PolicyCoding }> = [];

  constructor(codes: PolicyCoding[]) {
    for (const entry of codes) {
      const key = canonicalSystem(entry.system);
      const prefix = entry.code.endsWith('*');
      const exact = canonicalCode(entry.system, prefix ? entry.code.slice(0, -1) : entry.code);
      // An entry without a system (from a Consent) is compared without dots, like a bare coding.
      const code = key === '' ? exact.replace(/\./g, '') : exact;
      this.all.push({ code, prefix, entry });
      if (prefix) this.prefixes.set(key, [...(this.prefixes.get(key) ?? []), [code, entry]]);
      else this.exact.set(key, (this.exact.get(key) ?? new Map()).set(code, entry));
    }
  }

  /**
   * The list entry the coding matches, if any. A coding without a system, or a list entry
   * without one (from a Consent), is compared by code alone.
   */
  find(coding: FoundCoding): PolicyCoding | undefined {
    const code = canonicalCode(coding.system, coding.code);
    const bare = code.replace(/\./g, '');
    const anySystem = this.exact.get('')?.get(bare) ?? this.prefixed('', bare);
    if (anySystem) return anySystem;
    if (coding.system === undefined || coding.system.trim() === '') {
      const hit = (c: string, prefix: boolean) =>
        prefix ? code.startsWith(c) || bare.startsWith(c) : code === c || bare === c;
      return this.all.find((e) => hit(e.code, e.prefix))?.entry;
    }
    const key = canonicalSystem(coding.system);
    const exact = this.exact.get(key)?.get(code);
    if (exact) return exact;
    return this.prefixed(key, code);
  }

  /** Whether any of the codings is on the list. */
  findAny(codings: FoundCoding[]): boolean {
    return codings.some((c) => this.find(c) !== undefined);
  }

  private prefixed(system: string, code: string): PolicyCoding | undefined {
    return (this.prefixes.get(system) ?? []).find(([p]) => code.startsWith(p))?.[1];
  }
}
