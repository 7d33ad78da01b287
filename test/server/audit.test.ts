/**
 * The audit trail at the server (found-37): every hook exchange is recorded before its answer
 * is sent, refusals as security events without the token; if nothing can be recorded, the
 * answer is a 503, never an unrecorded 200.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuditEvent } from '@medplum/fhirtypes';
import { CRDKIT_AUDIT_SYSTEMS } from '../../src/audit/index.js';
import { send } from '../helpers/https.js';
import { CPT, deviceRequest, orderRequest, serviceRequest } from '../helpers/requests.js';
import { startTestServer } from '../helpers/server.js';

const SIGN = '/cds-services/order-sign-crd';

async function events(server: Awaited<ReturnType<typeof startTestServer>>) {
  const out: AuditEvent[] = [];
  for await (const e of server.audit!.export({ reader: 'test' })) out.push(e);
  return out;
}

const identifierValues = (e: AuditEvent, system: string) =>
  (e.entity ?? []).flatMap((x) =>
    x.what?.identifier?.system === system ? [x.what.identifier.value] : [],
  );

describe('audit trail of hook exchanges (found-37)', () => {
  it('found-37: a hook call is recorded with its client, hook, patient, orders and assertion ids', async () => {
    const server = await startTestServer();
    try {
      const body = orderRequest({
        orders: [deviceRequest('dr-1', 'E0431'), serviceRequest('sr-1', CPT, '15823')],
      });
      const res = await server.post(SIGN, body);
      assert.equal(res.status, 200);
      const hookEvents = (await events(server)).filter((e) =>
        identifierValues(e, CRDKIT_AUDIT_SYSTEMS.hookInstance).includes(body.hookInstance),
      );
      assert.equal(hookEvents.length, 1);
      const [event] = hookEvents;
      const text = JSON.stringify(event);
      assert.match(text, /Patient\/pat-1/);
      assert.match(text, /DeviceRequest\/dr-1/);
      assert.match(text, /ServiceRequest\/sr-1/);
      const assertion = res.json.systemActions[0].resource.extension
        .at(-1)
        .extension.find((x: { url: string }) => x.url === 'coverage-assertion-id').valueString;
      assert.ok(
        identifierValues(event!, CRDKIT_AUDIT_SYSTEMS.coverageAssertionId).includes(assertion),
      );
      assert.equal(event!.outcome, '0');
      // A digest of the request and response, never their content.
      assert.ok(!text.includes('Tester') && !text.includes('ehr-access-token'));
      assert.match(text, /sha256/);
      assert.equal((await server.audit!.verify()).ok, true);
    } finally {
      await server.close();
    }
  });

  it('found-37: a refused token is recorded as a security event without the token', async () => {
    const server = await startTestServer();
    try {
      const token = await server.token('/cds-services/elsewhere');
      const res = await send(`${server.base}${SIGN}`, {
        method: 'POST',
        ca: server.ca,
        body: JSON.stringify(orderRequest()),
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      });
      assert.equal(res.status, 401);
      const all = await events(server);
      const text = JSON.stringify(all);
      assert.match(text, /ERR_JWT_AUD/);
      for (const part of token.split('.')) assert.ok(!text.includes(part));
    } finally {
      await server.close();
    }
  });

  it('found-37: a refused hook request (400) is recorded with its error code', async () => {
    const server = await startTestServer();
    try {
      const res = await server.post(SIGN, { ...orderRequest(), hookInstance: 'nope' });
      assert.equal(res.status, 400);
      assert.match(JSON.stringify(await events(server)), /ERR_REQUEST_INVALID/);
    } finally {
      await server.close();
    }
  });

  it('found-37: when the audit store cannot be written the answer is 503, not an unrecorded 200', async () => {
    const server = await startTestServer();
    try {
      await server.audit!.close();
      const res = await server.post(SIGN, orderRequest());
      assert.equal(res.status, 503);
      assert.equal(res.json.resourceType, 'OperationOutcome');
      // The access line is written once the answer has gone (onResponse).
      await new Promise((r) => setTimeout(r, 50));
      assert.ok(server.logs.some((l) => l.includes('"status":503')));
    } finally {
      await server.app.close();
    }
  });
});
