/**
 * The IG's own discovery templates (CRDServices.json, verbatim) against the IG's order-sign
 * example. The files are read in place from ../shared/fixtures; without them the tests skip.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import type { Bundle, Coverage, Resource } from '@medplum/fhirtypes';
import { runPrefetch } from '../../../src/client/prefetch/index.js';
import {
  APPOINTMENT_BOOK_PREFETCH,
  ENCOUNTER_PREFETCH,
  ORDER_DISPATCH_PREFETCH,
  ORDER_DRAFT_PREFETCH,
} from '../../../src/crd/prefetch-templates.js';
import {
  APPOINTMENT_BOOK_CONTEXT,
  ENCOUNTER_CONTEXT,
  FakeReader,
  ORDER_DISPATCH_CONTEXT,
  ORDER_SIGN_CONTEXT,
  PRIMARY,
  RECORDS,
} from './helpers.js';

const DIR = new URL('../../../../shared/fixtures/crd-ig/', import.meta.url);
const skip = existsSync(DIR) ? false : 'IG fixtures not found (../shared/fixtures/crd-ig)';
const load = (name: string) => JSON.parse(readFileSync(new URL(name, DIR), 'utf8'));

interface Service {
  id: string;
  hook: string;
  prefetch: Record<string, string>;
}

const CASES: Record<string, [Record<string, unknown>, Record<string, string>]> = {
  'appointment-book': [APPOINTMENT_BOOK_CONTEXT, APPOINTMENT_BOOK_PREFETCH],
  'encounter-start': [ENCOUNTER_CONTEXT, ENCOUNTER_PREFETCH],
  'encounter-discharge': [ENCOUNTER_CONTEXT, ENCOUNTER_PREFETCH],
  'order-dispatch': [ORDER_DISPATCH_CONTEXT, ORDER_DISPATCH_PREFETCH],
  'order-select': [ORDER_SIGN_CONTEXT, ORDER_DRAFT_PREFETCH],
  'order-sign': [ORDER_SIGN_CONTEXT, ORDER_DRAFT_PREFETCH],
};

const run = (templates: Record<string, string>, context: Record<string, unknown>) =>
  runPrefetch(
    { templates, context, primaryCoverage: PRIMARY, deadlineMs: 5000 },
    new FakeReader(RECORDS),
  );

describe('the IG discovery document (CRDServices.json)', { skip }, () => {
  const services: Service[] = skip ? [] : load('CRDServices.json').services;

  for (const service of services) {
    test(`found-23/found-25: ${service.id}: every IG template runs and matches crdkit's own`, async () => {
      const [context, crdkit] = CASES[service.hook]!;
      const [ig, own] = await Promise.all([run(service.prefetch, context), run(crdkit, context)]);
      assert.deepEqual(ig.failed, []);
      const expected = { ...own.prefetch };
      // digest §10.3: the IG asks order-dispatch for an encounter its context does not have.
      if (service.hook === 'order-dispatch') expected.encounter = null;
      assert.deepEqual(ig.prefetch, expected);
    });
  }

  test('found-31: the order-sign example is rebuilt from discovery keys, not the example keys', async () => {
    const request = load('CRDServiceRequest.json');
    const sign = services.find((s) => s.hook === 'order-sign')!;
    // The EHR holds what the example's prefetch shows.
    const records = Object.values(request.prefetch as Record<string, Resource | null>).flatMap(
      (v) =>
        !v ? [] : v.resourceType === 'Bundle' ? (v as Bundle).entry!.map((e) => e.resource!) : [v],
    );
    const primary = records.find((r) => r.resourceType === 'Coverage') as Coverage;
    const result = await runPrefetch(
      {
        templates: sign.prefetch,
        context: request.context,
        primaryCoverage: primary,
        deadlineMs: 5000,
        fhirBase: 'http://example.org/fhir',
      },
      new FakeReader(records),
    );
    assert.deepEqual(result.failed, []);
    assert.deepEqual(Object.keys(result.prefetch), Object.keys(sign.prefetch));
    assert.equal(result.prefetch.devices, null);
    assert.equal(result.prefetch.medications, null);
    assert.deepEqual(Object.fromEntries(result.queries.map((q) => [q.key, q.query])), {
      patient: 'Patient/123',
      encounter: 'Encounter/987',
      coverage: 'Coverage?patient=123&status=active&_id=COV1',
      practitionerRoles: 'PractitionerRole?_id=ABC',
    });
    // The example's role points to DEF and GHI under another base (http://example.org/someEHR/
    // fhir, one of the example's defects): not this EHR's records, so nothing to ask for.
    assert.equal(result.prefetch.practitioners, null);
    assert.equal(result.prefetch.organizations, null);
  });
});
