/**
 * The demo data: synthetic patients with MRN and SSN identifiers whose ids are unrelated to them,
 * coverages (one patient with one active and one cancelled, one with primary and secondary, one
 * with none), the demo payer found by its identifier, the care team and draft orders.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { Coverage, Organization, Patient, Resource } from '@medplum/fhirtypes';
import { exposesIdentifier } from '../../../src/ehr/ids.js';
import {
  DEMO_PAYER_IDENTIFIER,
  MRN_SYSTEM,
  seedDemoData,
  SSN_SYSTEM,
} from '../../../src/ehr/seed/index.js';
import { openResourceStore } from '../../../src/ehr/store/index.js';

const store = openResourceStore({ path: ':memory:' });
after(() => store.close());

describe('demo data', () => {
  const demo = seedDemoData(store);
  const read = <T extends Resource>(ref: string) => {
    const [type, id] = ref.split('/');
    return store.read<T>(type!, id!)!;
  };
  const coverages = (patient: string, status?: string) =>
    store.search<Coverage>('Coverage', [
      { name: 'patient', values: [patient] },
      ...(status ? [{ name: 'status', values: [status] }] : []),
    ]);

  test('sec-7: demo patients have an MRN and an SSN, and ids unrelated to both', () => {
    for (const key of ['patient-avery', 'patient-blake', 'patient-casey'] as const) {
      const patient = read<Patient>(demo[key]);
      const systems = patient.identifier!.map((i) => i.system);
      assert.ok(systems.includes(MRN_SYSTEM) && systems.includes(SSN_SYSTEM), key);
      assert.match(patient.identifier!.find((i) => i.system === SSN_SYSTEM)!.value!, /^999-/);
      assert.equal(exposesIdentifier(patient, [patient.id]), false);
    }
    for (const ref of Object.values(demo)) {
      const resource = read(ref);
      assert.equal(exposesIdentifier(resource, [resource.id]), false, ref);
      assert.equal(resource.meta?.versionId, '1');
    }
  });

  test('fhir: coverages: one active (and one cancelled), primary and secondary by order, and none', () => {
    const avery = coverages(demo['patient-avery'], 'active');
    assert.equal(avery.length, 1);
    assert.equal(coverages(demo['patient-avery']).length, 2);
    const blake = coverages(demo['patient-blake'], 'active');
    assert.deepEqual(blake.map((c) => c.order).sort(), [1, 2]);
    assert.equal(coverages(demo['patient-casey']).length, 0);
    const primary = blake.find((c) => c.order === 1)!;
    assert.equal(primary.payor[0]!.reference, demo['org-payer']);
    assert.deepEqual(primary.payor[0]!.identifier, DEMO_PAYER_IDENTIFIER);
  });

  test('fhir: the demo payer is Example Health Plan, identified by urn:crdkit:payer|example-payer', () => {
    const [payer] = store.search<Organization>('Organization', [
      { name: 'identifier', values: ['urn:crdkit:payer|example-payer'] },
    ]);
    assert.equal(payer!.name, 'Example Health Plan');
    assert.equal(`Organization/${payer!.id}`, demo['org-payer']);
  });

  test('fhir: the care team, encounter and draft orders reference each other by stored ids', () => {
    const oxygen = read<Resource & Record<string, any>>(demo['order-oxygen']);
    assert.equal(oxygen.status, 'draft');
    assert.equal(oxygen.codeReference.reference, demo['device-oxygen']);
    const device = read<Resource & Record<string, any>>(demo['device-oxygen']);
    assert.equal(device.type.coding[0].code, 'E0431');
    const sr = read<Resource & Record<string, any>>(demo['order-blepharoplasty']);
    assert.equal(sr.code.coding[0].code, '15823');
    assert.equal(sr.code.coding[0].system, 'http://www.ama-assn.org/go/cpt');
    const med = read<Resource & Record<string, any>>(demo['order-adalimumab']);
    assert.equal(med.medicationReference.reference, demo['medication-adalimumab']);
    const encounter = read<Resource & Record<string, any>>(demo['encounter-avery']);
    assert.equal(encounter.participant[0].individual.reference, demo['role-morgan']);
    assert.equal(encounter.location[0].location.reference, demo['loc-hospital']);
    const role = read<Resource & Record<string, any>>(demo['role-morgan']);
    assert.equal(role.practitioner.reference, demo['pract-morgan']);
    assert.equal(role.organization.reference, demo['org-hospital']);
    const appointment = read<Resource & Record<string, any>>(demo['appointment-blake']);
    assert.equal(appointment.basedOn[0].reference, demo['order-blepharoplasty']);
    assert.equal(
      store.patientOf('Appointment', demo['appointment-blake'].split('/')[1]!),
      demo['patient-blake'].split('/')[1],
    );
  });

  test('fhir: seeding again finds the demo data instead of duplicating it', () => {
    const again = seedDemoData(store);
    assert.deepEqual(again, demo);
    assert.equal(store.search('Patient', []).length, 3);
  });
});
