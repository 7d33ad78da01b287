import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkHookRequest } from '../../src/cds/request.js';
import { CdsError } from '../../src/cds/outcome.js';
import { HOOKS } from '../../src/crd/hooks.js';

const orderSign = () => ({
  hook: 'order-sign',
  hookInstance: 'b8b5d5b1-2f8a-4e0a-9f54-3c2a6a1f0a11',
  fhirServer: 'https://ehr.test/fhir',
  fhirAuthorization: {
    access_token: 'opaque',
    token_type: 'Bearer',
    expires_in: 30,
    scope: 'patient/Patient.read',
    subject: 'payer-client',
  },
  context: {
    userId: 'Practitioner/p1',
    patientId: 'pat1',
    draftOrders: {
      resourceType: 'Bundle',
      type: 'collection',
      entry: [{ resource: { resourceType: 'ServiceRequest', id: 'sr1', status: 'draft' } }],
    },
  },
});

function refused(def: keyof typeof HOOKS, body: unknown): CdsError {
  try {
    checkHookRequest(HOOKS[def], body);
  } catch (err) {
    assert.ok(err instanceof CdsError, String(err));
    return err;
  }
  assert.fail('the request was accepted');
}

describe('hook request checks (hook-13, hook-20)', () => {
  it('hook-20: a complete order-sign request is accepted', () => {
    const req = checkHookRequest(HOOKS['order-sign'], orderSign());
    assert.equal(req.hook, 'order-sign');
  });

  it('hook-13: a hook that does not match the service is a 400 naming "hook"', () => {
    const err = refused('order-sign', { ...orderSign(), hook: 'order-select' });
    assert.equal(err.status, 400);
    assert.deepEqual(err.toOutcome().issue[0]?.expression, ['hook']);
  });

  it('hook-13: a hookInstance that is not a UUID is a 400', () => {
    const err = refused('order-sign', { ...orderSign(), hookInstance: 'not-a-uuid' });
    assert.equal(err.status, 400);
    assert.deepEqual(err.toOutcome().issue[0]?.expression, ['hookInstance']);
  });

  it('hook-13: a missing required context field is a 400 naming it', () => {
    const body = orderSign();
    delete (body.context as Partial<typeof body.context>).userId;
    const err = refused('order-sign', body);
    assert.equal(err.status, 400);
    assert.equal(err.toOutcome().issue[0]?.code, 'required');
    assert.deepEqual(err.toOutcome().issue[0]?.expression, ['context.userId']);
  });

  it('hook-13: patientId given as a reference is a 400', () => {
    const body = orderSign();
    body.context.patientId = 'Patient/pat1';
    assert.deepEqual(refused('order-sign', body).toOutcome().issue[0]?.expression, [
      'context.patientId',
    ]);
  });

  it('hook-13: userId of the wrong resource type is a 400', () => {
    const body = orderSign();
    body.context.userId = 'Device/d1';
    assert.equal(refused('order-sign', body).status, 400);
  });

  it('found-36: a draft order without an id is a 400', () => {
    const body = orderSign();
    delete (body.context.draftOrders.entry[0]!.resource as { id?: string }).id;
    const err = refused('order-sign', body);
    assert.deepEqual(err.toOutcome().issue[0]?.expression, [
      'context.draftOrders.entry[0].resource.id',
    ]);
  });

  it('hook-13: fhirAuthorization without fhirServer is a 400 naming fhirServer', () => {
    const { fhirServer: _omit, ...body } = orderSign();
    const err = refused('order-sign', body);
    assert.equal(err.status, 400);
    assert.deepEqual(err.toOutcome().issue[0]?.expression, ['fhirServer']);
  });

  for (const field of ['access_token', 'scope', 'subject', 'token_type', 'expires_in']) {
    it(`hook-13: fhirAuthorization.${field} missing is a 400 naming it`, () => {
      const body = orderSign();
      delete (body.fhirAuthorization as Record<string, unknown>)[field];
      const err = refused('order-sign', body);
      assert.equal(err.status, 400);
      assert.deepEqual(err.toOutcome().issue[0]?.expression, [`fhirAuthorization.${field}`]);
    });
  }

  it('hook-20: a request without fhirAuthorization breaks CRD (422), not CDS Hooks', () => {
    const { fhirAuthorization: _omit, ...body } = orderSign();
    const err = refused('order-sign', body);
    assert.equal(err.status, 422);
    assert.deepEqual(err.toOutcome().issue[0]?.expression, ['fhirAuthorization']);
  });

  it('hook-23: unknown context elements and top-level members are ignored', () => {
    const body = { ...orderSign(), surprise: true, context: { ...orderSign().context, extra: 1 } };
    assert.doesNotThrow(() => checkHookRequest(HOOKS['order-sign'], body));
  });

  it('hook-34: order-select selections must point into draftOrders (422)', () => {
    const body = {
      ...orderSign(),
      hook: 'order-select',
      context: { ...orderSign().context, selections: ['ServiceRequest/other'] },
    };
    const err = refused('order-select', body);
    assert.equal(err.status, 422);
    assert.deepEqual(err.toOutcome().issue[0]?.expression, ['context.selections[0]']);
  });

  it('hook-31: order-dispatch accepts the CRD 2.0.1 names "order" and "task" (Inferno)', () => {
    const body = {
      ...orderSign(),
      hook: 'order-dispatch',
      context: {
        patientId: 'pat1',
        performer: 'Practitioner/p1',
        order: 'ServiceRequest/sr1',
        task: { resourceType: 'Task', id: 't1' },
      },
    };
    const req = checkHookRequest(HOOKS['order-dispatch'], body);
    assert.deepEqual(req.context.dispatchedOrders, ['ServiceRequest/sr1']);
  });

  it('hook-31: order-dispatch needs no userId and refuses a non-order dispatchedOrders entry', () => {
    const body = {
      ...orderSign(),
      hook: 'order-dispatch',
      context: { patientId: 'pat1', performer: 'Organization/o1', dispatchedOrders: ['Patient/x'] },
    };
    const err = refused('order-dispatch', body);
    assert.deepEqual(err.toOutcome().issue[0]?.expression, ['context.dispatchedOrders[0]']);
  });

  it('a body that is not an object is a 400', () => {
    assert.equal(refused('order-sign', [1, 2]).status, 400);
    assert.equal(refused('order-sign', null).status, 400);
  });
});
