/**
 * hook-13 / found-32 while shutting down: a request that still reaches the server once it has
 * begun to close (pipelined, or on a keep-alive connection) gets a 503 OperationOutcome with
 * `Connection: close`, like every other error, not Fastify's bare JSON.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { test } from 'node:test';
import inject from 'light-my-request';
import { startTestServer } from '../helpers/server.js';
import { minimalOrderSign } from '../helpers/requests.js';

test('hook-13: a request arriving while the server closes gets a 503 OperationOutcome', async () => {
  const server = await startTestServer();
  const path = '/cds-services/order-sign-crd';
  const token = await server.token(path);
  // The server's own request handler, as a connection that is still open would reach it.
  const handler = server.app.server.listeners('request')[0] as (
    req: IncomingMessage,
    res: ServerResponse,
  ) => void;
  const closed = server.close();
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  const res = await inject(handler, {
    method: 'POST',
    url: path,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    payload: JSON.stringify(minimalOrderSign()),
  });
  await closed;
  assert.equal(res.statusCode, 503);
  assert.equal(res.headers.connection, 'close');
  assert.match(String(res.headers['content-type']), /^application\/fhir\+json/);
  const outcome = res.json() as { resourceType: string; issue: Array<{ code: string }> };
  assert.equal(outcome.resourceType, 'OperationOutcome');
  assert.equal(outcome.issue[0]!.code, 'transient');
  assert.match(res.payload, /ERR_SHUTTING_DOWN/);
});
