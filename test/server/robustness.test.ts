/**
 * Hostile and malformed input at the HTTP boundary: every answer is a 2xx or 4xx with a JSON
 * OperationOutcome, never a 5xx, a crash or a request to an address the caller chose.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { FhirStub } from '../helpers/fhir-stub.js';
import { send } from '../helpers/https.js';
import {
  bundle,
  coverage,
  deviceRequest,
  orderRequest,
  patient,
  serviceRequest,
  CPT,
} from '../helpers/requests.js';
import { startServerWithStub, type TestServer } from '../helpers/server.js';

let server: TestServer;
let stub: FhirStub;
let close: () => Promise<void>;
before(async () => {
  ({ server, stub, close } = await startServerWithStub([patient(), coverage()]));
});
after(() => close());

const SIGN = '/cds-services/order-sign-crd';
type Json = Record<string, any>;
const errorCode = (res: { json: Json }) => res.json?.issue?.[0]?.details?.coding?.[0]?.code;

describe('FHIR shapes (hook-13: content failing FHIR validation is a 400)', () => {
  const cases: Array<[string, Json, string]> = [
    [
      'a coding that is an object',
      { ...deviceRequest('dr-1', 'E0431'), codeCodeableConcept: { coding: { code: 'E0431' } } },
      'context.draftOrders.entry[0].resource.codeCodeableConcept',
    ],
    [
      'a reference that is a number',
      { ...serviceRequest('sr-1', CPT, '15823'), basedOn: [{ reference: 5 }] },
      'context.draftOrders.entry[0].resource.basedOn',
    ],
    [
      'extensions that are not an array',
      { ...serviceRequest('sr-1', CPT, '15823'), extension: { url: 'x' } },
      'context.draftOrders.entry[0].resource.extension',
    ],
  ];
  for (const [what, order, path] of cases) {
    it(`hook-13: ${what} is a 400 naming the element`, async () => {
      const res = await server.post(SIGN, orderRequest({ orders: [order] }));
      assert.equal(res.status, 400);
      assert.equal(errorCode(res), 'ERR_FHIR_INVALID');
      assert.deepEqual(res.json.issue[0].expression, [path]);
    });
  }

  it('hook-13: a Coverage whose payor is not an array is a 400', async () => {
    const cov = bundle([coverage({ payor: { reference: 'Organization/acme-payer' } })]);
    const res = await server.post(
      SIGN,
      orderRequest({ prefetch: { patient: patient(), coverage: cov } }),
    );
    assert.equal(res.status, 400);
    assert.deepEqual(res.json.issue[0].expression, ['prefetch.coverage.entry[0].resource.payor']);
  });

  it('hook-13: a Bundle entry that is null is a 400, not a crash', async () => {
    const cov = { ...bundle([coverage()]), entry: [null, { resource: coverage() }] };
    const res = await server.post(
      SIGN,
      orderRequest({ prefetch: { patient: patient(), coverage: cov } }),
    );
    assert.equal(res.status, 400);
    assert.deepEqual(res.json.issue[0].expression, ['prefetch.coverage.entry']);
  });

  it('hook-13: JSON nested deeper than 64 levels is a 400 before any work', async () => {
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    const body = JSON.stringify(orderRequest()).replace('"hook":', `"deep":${deep},"hook":`);
    const res = await server.post(SIGN, body);
    assert.equal(res.status, 400);
    assert.equal(errorCode(res), 'ERR_JSON_DEPTH');
  });

  it('limits.maxOrders: more than 100 orders is a 422', async () => {
    const orders = Array.from({ length: 101 }, (_, i) => deviceRequest(`dr-${i}`, 'E0431'));
    const res = await server.post(SIGN, orderRequest({ orders }));
    assert.equal(res.status, 422);
    assert.equal(errorCode(res), 'ERR_TOO_MANY_ORDERS');
  });
});

describe('ids and the token boundary (sec-9)', () => {
  it('sec-9: a patientId made of dots is refused; fhirServer is not queried', async () => {
    stub.requests.length = 0;
    const body = orderRequest({ prefetch: undefined, fhirServer: stub.base });
    body.context.patientId = '..';
    const res = await server.post(SIGN, body);
    assert.equal(res.status, 400);
    assert.equal(stub.requests.length, 0);
  });

  it('sec-9: a Medication reference of dots is never read', async () => {
    stub.requests.length = 0;
    const order = {
      ...serviceRequest('sr-1', CPT, '15823'),
      basedOn: [{ reference: 'https://ehr.test/fhir/ServiceRequest/..' }],
    };
    const res = await server.post(SIGN, orderRequest({ fhirServer: stub.base, orders: [order] }));
    assert.equal(res.status, 200);
    assert.ok(stub.requests.every((r) => !r.path.includes('..')));
  });
});

describe('HTTP boundary', () => {
  it('sec-1 (CDS Hooks JWT): two Authorization headers are refused', async () => {
    const token = await server.token(SIGN);
    const res = await new Promise<{ status: number }>((resolve, reject) => {
      const socket = connect(
        {
          host: '127.0.0.1',
          port: Number(new URL(server.base).port),
          servername: 'localhost',
          ca: server.ca,
        },
        () => {
          const body = JSON.stringify(orderRequest());
          socket.write(
            `POST ${SIGN} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n` +
              `Authorization: Bearer ${token}\r\nAuthorization: Bearer ${token}\r\n` +
              `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
          );
        },
      );
      let data = '';
      socket.on('data', (d) => (data += d.toString()));
      socket.on('end', () => resolve({ status: Number(data.split(' ')[1]) }));
      socket.on('error', reject);
    });
    assert.equal(res.status, 401);
  });

  it('hook-10: oversized headers get a 431 OperationOutcome with the security headers', async () => {
    const res = await send(`${server.base}/cds-services`, {
      ca: server.ca,
      headers: { 'x-big': 'a'.repeat(20_000) },
    });
    assert.equal(res.status, 431);
    assert.equal(res.json.resourceType, 'OperationOutcome');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
  });

  it('hook-10: a malformed URL is a 400 OperationOutcome that does not echo the path', async () => {
    const res = await send(`${server.base}/cds-services/%E0%A4%A`, { ca: server.ca });
    assert.ok(res.status === 400 || res.status === 404, String(res.status));
    assert.equal(res.json.resourceType, 'OperationOutcome');
    assert.ok(!res.text.includes('%E0'));
  });

  it('sec-3: the server refuses TLS renegotiation', async () => {
    const outcome = await new Promise<string>((resolve) => {
      const socket = connect(
        {
          host: '127.0.0.1',
          port: Number(new URL(server.base).port),
          servername: 'localhost',
          ca: server.ca,
          maxVersion: 'TLSv1.2',
        },
        () => {
          const ok = socket.renegotiate({ rejectUnauthorized: true }, (err) => {
            socket.destroy();
            resolve(err ? 'refused' : 'renegotiated');
          });
          if (!ok) resolve('refused');
        },
      );
      socket.on('error', () => resolve('refused'));
      socket.on('close', () => resolve('refused'));
    });
    assert.equal(outcome, 'refused');
  });
});

describe('property: any mutation of a valid request gets a 2xx or 4xx JSON answer', () => {
  const leaf = fc.oneof(
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.string({ maxLength: 8 }),
    fc.constant('..'),
    fc.constant({}),
    fc.constant([]),
    fc.constant([null]),
    fc.dictionary(
      fc.constantFrom('coding', 'reference', 'extension', 'url', '__proto__'),
      fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.constant(null), fc.constant([{}])),
    ),
  );

  /** Every path of objects and arrays in a request, e.g. ['context', 'draftOrders', 'entry', 0]. */
  function paths(
    value: unknown,
    prefix: Array<string | number> = [],
  ): Array<Array<string | number>> {
    if (typeof value !== 'object' || value === null) return [prefix];
    const entries = Array.isArray(value)
      ? value.map((v, i) => [i, v] as const)
      : Object.entries(value);
    return [prefix, ...entries.flatMap(([k, v]) => paths(v, [...prefix, k]))];
  }

  it('hook-9/hook-13: 150 random mutations never give a 5xx', async () => {
    const base = orderRequest({
      orders: [deviceRequest('dr-1', 'E0431'), serviceRequest('sr-1', CPT, '15823')],
      fhirServer: stub.base,
    });
    const all = paths(base).filter((p) => p.length > 0);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...all), leaf, async (path, value) => {
        const body = structuredClone(base);
        let at: any = body;
        for (const k of path.slice(0, -1)) at = at[k];
        at[path[path.length - 1]!] = value;
        const res = await server.post(SIGN, body);
        assert.ok(
          res.status < 500,
          `${path.join('.')} = ${JSON.stringify(value)}: ${res.text.slice(0, 200)}`,
        );
        assert.equal(typeof res.json, 'object');
      }),
      { numRuns: 150, seed: 20261204 },
    );
  });
});
