/**
 * The EHR's resource store: random internal ids, versionId and lastUpdated kept, every version in
 * the history, the patient column, and the search index the FHIR API runs on.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import type { Coverage, Patient, Resource } from '@medplum/fhirtypes';
import { openResourceStore, StoreError } from '../../../src/ehr/store/index.js';

const dir = mkdtempSync(join(tmpdir(), 'crdkit-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let clock = new Date('2025-06-01T00:00:00.000Z');
let n = 0;
const open = (path = join(dir, `s-${n++}.db`)) => openResourceStore({ path, now: () => clock });

describe('resource store', () => {
  test('fhir: create assigns a random id, versionId 1 and lastUpdated; update advances both and keeps history', () => {
    const path = join(dir, 'crud.db');
    const store = open(path);
    try {
      const created = store.create<Patient>({
        resourceType: 'Patient',
        id: 'chosen-by-client',
        identifier: [{ system: 'http://hospital.example/mrn', value: 'MRN-1' }],
      });
      assert.match(created.id!, /^[0-9a-f-]{36}$/);
      assert.equal(created.meta!.versionId, '1');
      assert.equal(created.meta!.lastUpdated, '2025-06-01T00:00:00.000Z');
      clock = new Date('2025-06-01T00:01:00.000Z');
      const updated = store.update({ ...created, active: true });
      assert.equal(updated.meta!.versionId, '2');
      assert.equal(updated.meta!.lastUpdated, '2025-06-01T00:01:00.000Z');
      assert.deepEqual(store.read('Patient', created.id!), updated);
      assert.equal(store.read('Patient', 'nope'), undefined);
      assert.equal(store.read('Patient', '../x'), undefined);
      assert.equal(statSync(path).mode & 0o777, 0o600);
      const raw = new BetterSqlite3(path, { readonly: true });
      try {
        const versions = raw
          .prepare('SELECT version FROM resource_history WHERE id = ? ORDER BY version')
          .pluck()
          .all(created.id);
        assert.deepEqual(versions, [1, 2]);
        const patient = raw
          .prepare('SELECT patient FROM resources WHERE id = ?')
          .pluck()
          .get(created.id);
        assert.equal(patient, created.id);
      } finally {
        raw.close();
      }
    } finally {
      store.close();
    }
  });

  test('fhir: update of an unknown id is ERR_STORE_NOT_FOUND; a stale ifMatch is ERR_STORE_VERSION', () => {
    const store = open();
    try {
      assert.throws(
        () => store.update({ resourceType: 'Patient', id: 'missing' }),
        (err: unknown) => err instanceof StoreError && err.code === 'ERR_STORE_NOT_FOUND',
      );
      const p = store.create({ resourceType: 'Patient' });
      store.update(p, { ifMatch: '1' });
      assert.throws(
        () => store.update(p, { ifMatch: '1' }),
        (err: unknown) =>
          err instanceof StoreError && err.code === 'ERR_STORE_VERSION' && err.status === 412,
      );
      assert.throws(
        () => store.create({ resourceType: 'Bundle', type: 'collection' } as Resource),
        (err: unknown) => err instanceof StoreError && err.code === 'ERR_STORE_INVALID',
      );
    } finally {
      store.close();
    }
  });

  test('fhir: search by _id, token and reference; values are ORed, parameters ANDed; patient limits', () => {
    const store = open();
    try {
      const p1 = store.create<Patient>({ resourceType: 'Patient' });
      const p2 = store.create<Patient>({ resourceType: 'Patient' });
      const cov = (patient: Patient, status: Coverage['status']) =>
        store.create<Coverage>({
          resourceType: 'Coverage',
          status,
          beneficiary: { reference: `Patient/${patient.id}` },
          payor: [{ reference: 'Organization/o1' }],
        });
      const a = cov(p1, 'active');
      const b = cov(p1, 'cancelled');
      const c = cov(p2, 'active');
      const ids = (rs: Resource[]) => rs.map((r) => r.id).sort();
      assert.deepEqual(
        ids(store.search('Coverage', [{ name: 'patient', values: [`Patient/${p1.id}`] }])),
        ids([a, b]),
      );
      assert.deepEqual(
        ids(
          store.search('Coverage', [
            { name: 'patient', values: [`Patient/${p1.id}`] },
            { name: 'status', values: ['active'] },
          ]),
        ),
        ids([a]),
      );
      assert.deepEqual(
        ids(store.search('Coverage', [{ name: 'status', values: ['active', 'cancelled'] }])),
        ids([a, b, c]),
      );
      assert.deepEqual(
        ids(store.search('Coverage', [{ name: '_id', values: [c.id!, 'x'] }])),
        ids([c]),
      );
      assert.deepEqual(store.search('Coverage', [{ name: '_id', values: [] }]), []);
      assert.deepEqual(ids(store.search('Coverage', [], { patient: p2.id! })), ids([c]));
      assert.equal(store.search('Coverage', [], { limit: 2 }).length, 2);
      assert.equal(store.patientOf('Coverage', a.id!), p1.id);
      // The index follows updates.
      store.update({ ...a, status: 'cancelled' });
      assert.deepEqual(
        ids(store.search('Coverage', [{ name: 'status', values: ['active'] }])),
        ids([c]),
      );
    } finally {
      store.close();
    }
  });

  test('sec-7: internal ids are random, never taken from the resource or its identifiers', () => {
    const store = open();
    try {
      const seen = new Set<string>();
      for (let i = 0; i < 50; i++) {
        const p = store.create({
          resourceType: 'Patient',
          id: `MRN-${i}`,
          identifier: [{ value: `MRN-${i}` }],
        } as Patient);
        assert.doesNotMatch(p.id!, /MRN/);
        seen.add(p.id!);
      }
      assert.equal(seen.size, 50);
    } finally {
      store.close();
    }
  });
});
