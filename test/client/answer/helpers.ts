/** Crafted CDS Hooks responses for the answer tests. */
import type { Extension } from '@medplum/fhirtypes';
import { COVERAGE_INFORMATION_URL } from '../../../src/crd/coverage-codes.js';

export const CARD_TYPE = 'http://terminology.hl7.org/CodeSystem/cdshooks-card-type';

export const ORDERS = [
  { resourceType: 'ServiceRequest', id: '1357' },
  { resourceType: 'ServiceRequest', id: '2468' },
];

export const REQUEST = { hook: 'order-sign', orders: ORDERS };

/** A valid card with every member the validator checks; `over` replaces members. */
export function card(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    uuid: 'c6a1b2a4-0000-4000-8000-000000000001',
    summary: 'Prior authorization is needed for home oxygen',
    detail: 'Submit the **CMN** with the order.',
    indicator: 'info',
    source: {
      label: 'Example Health Plan',
      url: 'https://payer.example.org/policies',
      topic: { system: CARD_TYPE, code: 'guideline', display: 'Guideline' },
    },
    links: [
      { label: 'Home oxygen policy', url: 'https://payer.example.org/o2.pdf', type: 'absolute' },
    ],
    extension: { 'davinci-crd.associated-resource': [{ reference: 'ServiceRequest/2468' }] },
    ...over,
  };
}

/** A card with one suggestion (alternate request: delete + create). */
export function suggestionCard(over: Record<string, unknown> = {}): Record<string, unknown> {
  return card({
    uuid: 'c6a1b2a4-0000-4000-8000-000000000002',
    summary: 'Use the covered generic instead',
    links: undefined,
    source: {
      label: 'Example Health Plan',
      topic: { system: CARD_TYPE, code: 'therapy-alternatives-opt' },
    },
    selectionBehavior: 'any',
    suggestions: [
      {
        label: 'Switch to the generic',
        uuid: 's-1',
        actions: [
          {
            type: 'delete',
            description: 'Remove the brand order',
            resourceId: 'ServiceRequest/2468',
          },
          {
            type: 'create',
            description: 'Add the generic order',
            resource: { resourceType: 'ServiceRequest', id: 'new-1', status: 'draft' },
          },
        ],
      },
    ],
    ...over,
  });
}

/** A valid coverage-information extension for `coverage`; `extra` sub-extensions are appended. */
export function coverageInfo(
  coverage = 'Coverage/COV1',
  id = 'A-1',
  extra: Extension[] = [],
): Extension {
  return {
    url: COVERAGE_INFORMATION_URL,
    extension: [
      { url: 'coverage', valueReference: { reference: coverage } },
      { url: 'covered', valueCode: 'covered' },
      { url: 'pa-needed', valueCode: 'no-auth' },
      { url: 'date', valueDate: '2026-01-05' },
      { url: 'coverage-assertion-id', valueString: id },
      ...extra,
    ],
  };
}
