import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Resource } from '@medplum/fhirtypes';
import { BILLING_OPTIONS_URL, orderCodes, PAYLOAD_CONTENT_URL } from '../../src/crd/order-codes.js';
import { fixture, SKIP } from './fixtures.js';

const cc = (system: string, code: string) => ({ coding: [{ system, code }] });
const billing = (system: string, code: string) => ({
  url: BILLING_OPTIONS_URL,
  valueCodeableConcept: cc(system, code),
});
const codes = (r: Resource, related = {}) =>
  orderCodes(r, related).map((c) => `${c.system}|${c.code}`);
const CPT = 'http://www.ama-assn.org/go/cpt';
const SCT = 'http://snomed.info/sct';
const HCPCS = 'https://bluebutton.cms.gov/resources/codesystem/hcpcs';
const RXN = 'http://www.nlm.nih.gov/research/umls/rxnorm';

type OrderBundle = { context: { draftOrders: { entry: Array<{ resource: Resource }> } } };

describe('orderCodes', () => {
  test('billopt-3: billing options are considered when present (IG ServiceRequest/1357)', (t) => {
    const req = fixture('crd-ig/CRDServiceRequest.json') as OrderBundle | undefined;
    if (req === undefined) return t.skip(SKIP);
    const [sr1357, sr2468] = req.context.draftOrders.entry.map((e) => e.resource);
    assert.deepEqual(codes(sr1357 as Resource), [
      `${SCT}|726551006`,
      `${CPT}|77061`,
      `${CPT}|77062`,
      `${CPT}|77065`,
      `${CPT}|77066`,
    ]);
    assert.deepEqual(codes(sr2468 as Resource), [
      'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets|E0431',
    ]);
  });

  test('billopt-3: billing options anywhere in the order, deduplicated', () => {
    const sr = {
      resourceType: 'ServiceRequest',
      status: 'draft',
      intent: 'order',
      subject: {},
      code: { ...cc(SCT, '1'), extension: [billing(CPT, '77065'), billing(CPT, '77065')] },
      extension: [billing(CPT, '77066')],
    } as Resource;
    assert.deepEqual(codes(sr), [`${SCT}|1`, `${CPT}|77065`, `${CPT}|77066`]);
  });

  test('billopt-2: an order without billing options still has its clinical codes', () => {
    const dr = {
      resourceType: 'DeviceRequest',
      status: 'draft',
      intent: 'order',
      subject: {},
      codeCodeableConcept: cc(HCPCS, 'E0250'),
    } as Resource;
    assert.deepEqual(codes(dr), [`${HCPCS}|E0250`]);
  });

  test('DeviceRequest.codeReference → Device.type; MedicationRequest → Medication.code', () => {
    const dr = {
      resourceType: 'DeviceRequest',
      status: 'draft',
      intent: 'order',
      subject: {},
      codeReference: { reference: 'Device/d1' },
    } as Resource;
    const device = {
      resourceType: 'Device',
      id: 'd1',
      type: cc(HCPCS, 'E0431'),
      extension: [billing(HCPCS, 'E0431')],
    } as Resource;
    assert.deepEqual(codes(dr, { devices: [device] }), [`${HCPCS}|E0431`]);
    const mr = {
      resourceType: 'MedicationRequest',
      status: 'draft',
      intent: 'order',
      subject: {},
      medicationReference: { reference: 'http://ehr/fhir/Medication/MED1' },
    } as Resource;
    const med = { resourceType: 'Medication', id: 'MED1', code: cc(RXN, '327361') } as Resource;
    assert.deepEqual(codes(mr, { medications: [med] }), [`${RXN}|327361`]);
    const contained = {
      ...mr,
      contained: [{ ...med, id: 'm' }],
      medicationReference: { reference: '#m' },
    } as Resource;
    assert.deepEqual(codes(contained), [`${RXN}|327361`]);
    assert.deepEqual(codes(mr), [], 'unresolvable reference: no codes, no error');
  });

  test('NutritionOrder: diet, formula and supplement types (Inferno order-sign)', (t) => {
    const req = fixture('inferno/order_sign_hook_request.json') as OrderBundle | undefined;
    if (req === undefined) return t.skip(SKIP);
    const no = req.context.draftOrders.entry[0]?.resource as Resource;
    assert.deepEqual(codes(no), [
      `${SCT}|226211001`,
      'http://goodhealthhospital.org/diet-type-codes|1010',
      `${SCT}|442971000124100`,
      'http://goodhealthhospital.org/supplement-type-codes|1040',
    ]);
    const enteral = {
      resourceType: 'NutritionOrder',
      status: 'draft',
      intent: 'order',
      patient: {},
      dateTime: '2024',
      enteralFormula: { baseFormulaType: cc(SCT, 'b'), additiveType: cc(SCT, 'a') },
    } as Resource;
    assert.deepEqual(codes(enteral), [`${SCT}|b`, `${SCT}|a`]);
  });

  test('VisionPrescription and CommunicationRequest payloads', () => {
    const vp = {
      resourceType: 'VisionPrescription',
      status: 'draft',
      created: '2024',
      patient: {},
      dateWritten: '2024',
      prescriber: {},
      lensSpecification: [{ product: cc(SCT, 'lens'), eye: 'left' }],
    } as Resource;
    assert.deepEqual(codes(vp), [`${SCT}|lens`]);
    const cr = {
      resourceType: 'CommunicationRequest',
      status: 'draft',
      payload: [
        {
          contentString: 'x',
          extension: [
            { url: PAYLOAD_CONTENT_URL, valueCodeableConcept: cc('http://loinc.org', '65752-8') },
          ],
        },
        { contentCodeableConcept: cc('http://loinc.org', '1-1') },
      ],
    } as unknown as Resource;
    assert.deepEqual(codes(cr), ['http://loinc.org|65752-8', 'http://loinc.org|1-1']);
  });

  test('Appointment: service type and category plus the ServiceRequests it is based on', () => {
    const appt = {
      resourceType: 'Appointment',
      status: 'proposed',
      participant: [],
      serviceType: [cc('http://terminology.hl7.org/CodeSystem/service-type', '24')],
      serviceCategory: [cc('http://terminology.hl7.org/CodeSystem/service-category', '8')],
      basedOn: [{ reference: 'ServiceRequest/sr1' }],
    } as Resource;
    const sr = {
      resourceType: 'ServiceRequest',
      id: 'sr1',
      status: 'active',
      intent: 'order',
      subject: {},
      code: cc(CPT, '72148'),
      extension: [billing(CPT, '72149')],
    } as Resource;
    assert.deepEqual(codes(appt, { serviceRequests: [sr] }), [
      'http://terminology.hl7.org/CodeSystem/service-type|24',
      'http://terminology.hl7.org/CodeSystem/service-category|8',
      `${CPT}|72148`,
      `${CPT}|72149`,
    ]);
  });
});
