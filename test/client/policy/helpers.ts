/** Small builders for the sharing-policy tests: a policy of a few codes and test resources. */
import type { SharingPolicy } from '../../../src/client/policy/index.js';

export const ICD = 'http://hl7.org/fhir/sid/icd-10-cm';
export const SCT = 'http://snomed.info/sct';
export const RXN = 'http://www.nlm.nih.gov/research/umls/rxnorm';
export const CONF = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';
export const ACT = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
export const HCPCS = 'http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets';
export const PAYER = 'Organization/payer1';
export const NOW = new Date('2026-03-01T12:00:00Z');

/** A policy with two enabled categories, one disabled, labels R and ETH, Patient.photo. */
export function testPolicy(over: Partial<SharingPolicy> = {}): SharingPolicy {
  return {
    withholdSecurityLabels: [
      { system: CONF, code: 'R' },
      { system: ACT, code: 'ETH' },
    ],
    categories: {
      'substance-use': {
        enabled: true,
        codes: [
          { system: ICD, code: 'F11*' },
          { system: RXN, code: '1819' },
          { system: HCPCS, code: 'H0020' },
        ],
      },
      hiv: { enabled: true, codes: [{ system: ICD, code: 'B20' }] },
      genetic: { enabled: false, codes: [{ system: ICD, code: 'Z15*' }] },
    },
    honourConsent: true,
    elements: [{ resourceType: 'Patient', path: 'photo' }],
    ...over,
  };
}

export const concept = (system: string, code: string) => ({ coding: [{ system, code }] });

export function condition(id: string, system: string, code: string) {
  return {
    resourceType: 'Condition',
    id,
    code: concept(system, code),
    subject: { reference: 'Patient/p1' },
  };
}

export function medicationRequest(id: string, rxnorm: string) {
  return {
    resourceType: 'MedicationRequest',
    id,
    status: 'draft',
    intent: 'order',
    medicationCodeableConcept: concept(RXN, rxnorm),
    subject: { reference: 'Patient/p1' },
  };
}

export function serviceRequest(id: string, system: string, code: string) {
  return {
    resourceType: 'ServiceRequest',
    id,
    status: 'draft',
    intent: 'order',
    code: concept(system, code),
    subject: { reference: 'Patient/p1' },
  };
}

export const patient = (extra: Record<string, unknown> = {}) => ({
  resourceType: 'Patient',
  id: 'p1',
  gender: 'female',
  ...extra,
});

export function bundle(resources: unknown[], type = 'collection', extra = {}) {
  return {
    resourceType: 'Bundle',
    type,
    ...extra,
    entry: resources.map((resource) => {
      const r = resource as { resourceType: string; id?: string };
      return { fullUrl: `https://ehr.example/fhir/${r.resourceType}/${r.id}`, resource };
    }),
  };
}

export const labelled = <T extends object>(resource: T, system: string, code: string): T => ({
  ...resource,
  meta: { security: [{ system, code }] },
});
