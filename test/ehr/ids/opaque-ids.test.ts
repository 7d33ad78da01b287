/**
 * sec-7: the opaque id mapping on its own. Ids are HMACs keyed per installation, different per
 * payer and type, valid FHIR ids, persistent across restarts; whole resources and Bundles are
 * translated both ways, and an id never issued is an error, never passed through.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import {
  exposesIdentifier,
  idRelatedTo,
  OpaqueIdError,
  openOpaqueIds,
  type OpaqueIds,
} from '../../../src/ehr/ids.js';

const BASE = 'https://ehr.example/fhir';
const dir = mkdtempSync(join(tmpdir(), 'crdkit-ids-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
const open = (path = join(dir, `ids-${n++}.db`), secret?: string): OpaqueIds =>
  openOpaqueIds({ path, baseUrl: BASE, ...(secret ? { secret } : {}) });

describe('opaque ids', () => {
  test('sec-7: an opaque id is stable, a valid FHIR id, different per payer and type, and round-trips', () => {
    const ids = open();
    try {
      const a = ids.toOpaque('payer-a', 'Patient', 'p1');
      assert.equal(ids.toOpaque('payer-a', 'Patient', 'p1'), a);
      assert.match(a, /^[A-Za-z0-9\-.]{1,64}$/);
      assert.equal(a.length, 32);
      assert.notEqual(ids.toOpaque('payer-b', 'Patient', 'p1'), a);
      assert.notEqual(ids.toOpaque('payer-a', 'Coverage', 'p1'), a);
      assert.notEqual(ids.toOpaque('payer-a', 'Patient', 'p2'), a);
      assert.equal(ids.toInternal('payer-a', 'Patient', a), 'p1');
      assert.equal(ids.toInternal('payer-a', 'Coverage', a), undefined);
    } finally {
      ids.close();
    }
  });

  test('sec-7: an id from payer A is unknown to payer B', () => {
    const ids = open();
    try {
      const a = ids.toOpaque('payer-a', 'Patient', 'p1');
      assert.equal(ids.toInternal('payer-b', 'Patient', a), undefined);
      assert.throws(
        () => ids.incoming('payer-b', { resourceType: 'Patient', id: a }),
        (err: unknown) =>
          err instanceof OpaqueIdError && err.code === 'ERR_ID_UNKNOWN' && err.status === 400,
      );
    } finally {
      ids.close();
    }
  });

  test('sec-7: ids survive a restart (the secret is kept with the mapping) and differ per installation', () => {
    const path = join(dir, 'restart.db');
    const first = open(path);
    const id = first.toOpaque('payer-a', 'Patient', 'p1');
    first.close();
    const second = open(path);
    try {
      assert.equal(second.toOpaque('payer-a', 'Patient', 'p1'), id);
      assert.equal(second.toInternal('payer-a', 'Patient', id), 'p1');
    } finally {
      second.close();
    }
    const other = open();
    try {
      assert.notEqual(other.toOpaque('payer-a', 'Patient', 'p1'), id);
    } finally {
      other.close();
    }
    const configured = open(undefined, 'x'.repeat(32));
    const again = open(undefined, 'x'.repeat(32));
    try {
      assert.equal(
        configured.toOpaque('payer-a', 'Patient', 'p1'),
        again.toOpaque('payer-a', 'Patient', 'p1'),
      );
      assert.throws(() => open(undefined, 'short'), /at least 32 bytes/);
    } finally {
      configured.close();
      again.close();
    }
  });

  test('sec-7: outgoing rewrites the id and every reference to this server; #local, urn:uuid and other servers are kept', () => {
    const ids = open();
    try {
      const order = {
        resourceType: 'ServiceRequest',
        id: 'sr1',
        subject: { reference: 'Patient/p1', display: 'x' },
        requester: { reference: `${BASE}/PractitionerRole/r1` },
        performer: [
          { reference: '#perf' },
          { reference: 'https://other.example/fhir/Organization/o1' },
        ],
        basedOn: [{ reference: 'urn:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0' }],
        contained: [{ resourceType: 'Practitioner', id: 'perf' }],
        extension: [{ url: 'x', valueReference: { reference: 'Coverage/c1/_history/2' } }],
        identifier: [{ value: 'placer-1', assigner: { reference: 'Organization/o2' } }],
      } as unknown as Resource;
      const out = ids.outgoing('payer-a', order) as any;
      const o = (type: string, id: string) => ids.toOpaque('payer-a', type, id);
      assert.equal(out.id, o('ServiceRequest', 'sr1'));
      assert.equal(out.subject.reference, `Patient/${o('Patient', 'p1')}`);
      assert.equal(out.subject.display, 'x');
      assert.equal(
        out.requester.reference,
        `${BASE}/PractitionerRole/${o('PractitionerRole', 'r1')}`,
      );
      assert.equal(out.performer[0].reference, '#perf');
      assert.equal(out.performer[1].reference, 'https://other.example/fhir/Organization/o1');
      assert.equal(out.basedOn[0].reference, 'urn:uuid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0');
      assert.equal(out.contained[0].id, 'perf');
      assert.equal(
        out.extension[0].valueReference.reference,
        `Coverage/${o('Coverage', 'c1')}/_history/2`,
      );
      assert.equal(out.identifier[0].assigner.reference, `Organization/${o('Organization', 'o2')}`);
      assert.equal(out.identifier[0].value, 'placer-1');
      assert.equal((order as any).subject.reference, 'Patient/p1', 'the input is not changed');
      assert.deepEqual(ids.incoming('payer-a', out), order);
    } finally {
      ids.close();
    }
  });

  test('sec-7: a Bundle has its entries, full URLs and references rewritten, not its own id', () => {
    const ids = open();
    try {
      const bundle: Bundle = {
        resourceType: 'Bundle',
        id: 'b1',
        type: 'searchset',
        link: [{ relation: 'self', url: `${BASE}/Coverage?patient=opaque-from-client` }],
        entry: [
          {
            fullUrl: `${BASE}/Coverage/c1`,
            resource: {
              resourceType: 'Coverage',
              id: 'c1',
              status: 'active',
              beneficiary: { reference: 'Patient/p1' },
            } as Resource as never,
            search: { mode: 'match' },
          },
        ],
      };
      const out = ids.outgoing('payer-a', bundle) as any;
      const c1 = ids.toOpaque('payer-a', 'Coverage', 'c1');
      assert.equal(out.id, 'b1');
      assert.equal(out.link[0].url, bundle.link![0]!.url);
      assert.equal(out.entry[0].fullUrl, `${BASE}/Coverage/${c1}`);
      assert.equal(out.entry[0].resource.id, c1);
      assert.equal(
        out.entry[0].resource.beneficiary.reference,
        `Patient/${ids.toOpaque('payer-a', 'Patient', 'p1')}`,
      );
      assert.deepEqual(ids.incoming('payer-a', out), bundle);
    } finally {
      ids.close();
    }
  });

  test('sec-7: incoming refuses unknown and malformed references rather than passing them on', () => {
    const ids = open();
    try {
      const known = ids.toOpaque('payer-a', 'DeviceRequest', 'd1');
      const base = { resourceType: 'DeviceRequest', id: known } as Resource;
      assert.throws(
        () =>
          ids.incoming('payer-a', { ...base, subject: { reference: 'Patient/p1' } } as Resource),
        (err: unknown) =>
          err instanceof OpaqueIdError &&
          err.code === 'ERR_ID_UNKNOWN' &&
          err.expression === 'reference',
      );
      assert.throws(
        () =>
          ids.incoming('payer-a', { ...base, subject: { reference: 'Patient/a_b' } } as Resource),
        (err: unknown) => err instanceof OpaqueIdError && err.code === 'ERR_ID_INVALID',
      );
      const kept = ids.incoming('payer-a', {
        ...base,
        subject: { reference: 'https://payer.example/Patient/1' },
      } as Resource) as any;
      assert.equal(kept.id, 'd1');
      assert.equal(kept.subject.reference, 'https://payer.example/Patient/1');
      assert.throws(() => ids.toOpaque('', 'Patient', 'p1'), /no valid payer/);
    } finally {
      ids.close();
    }
  });

  test('sec-7: the guard sees an id equal to or containing an MRN or SSN, ignoring case and punctuation', () => {
    const patient = {
      resourceType: 'Patient',
      identifier: [
        { system: 'http://hospital.example/mrn', value: 'MRN-100001' },
        { system: 'http://hl7.org/fhir/sid/us-ssn', value: '999-01-0001' },
        { system: 'urn:x', value: '12' },
      ],
    } as Resource;
    assert.equal(exposesIdentifier(patient, ['mrn-100001']), true);
    assert.equal(exposesIdentifier(patient, ['pt.MRN100001.x']), true);
    assert.equal(exposesIdentifier(patient, ['p-999010001']), true);
    assert.equal(exposesIdentifier(patient, ['x-999-01-0001']), true);
    assert.equal(exposesIdentifier(patient, ['12']), true);
    // A short value inside a random id is chance, not a relationship.
    assert.equal(exposesIdentifier(patient, ['a12bc']), false);
    assert.equal(exposesIdentifier(patient, ['0b7f7e0c-2c55-4d9c-9d0c-7a4c5e1e2f3a']), false);
    assert.equal(exposesIdentifier({ resourceType: 'Patient' } as Resource, ['anything']), false);
    assert.equal(idRelatedTo('ABC123456', ['abc-123456']), true);
  });
});
