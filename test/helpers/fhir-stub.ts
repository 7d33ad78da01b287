/**
 * A FHIR server stub on loopback HTTPS: serves reads and `Coverage?patient=` searches from an
 * in-memory map and records every request (path and Authorization header) for assertions.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { selfSignedCertificate } from '../../src/tls/certs.js';

export interface StubRequest {
  path: string;
  authorization?: string;
}

export interface FhirStub {
  /** Base URL, e.g. `https://127.0.0.1:41234/fhir`. */
  base: string;
  origin: string;
  cert: string;
  requests: StubRequest[];
  resources: Map<string, object>;
  /** Set to make every request fail with this status, or hang when `'hang'`. */
  failWith?: number | 'hang';
  /** Set to answer every request this many ms late (a slow but working FHIR server). */
  delayMs?: number;
  close(): Promise<void>;
}

/** Starts a stub that knows `resources` (each with `resourceType` and `id`). */
export async function startFhirStub(resources: object[] = []): Promise<FhirStub> {
  const pem = await selfSignedCertificate('localhost');
  const stub: Partial<FhirStub> = {
    cert: pem.cert,
    requests: [],
    resources: new Map(
      resources.map((r) => {
        const { resourceType, id } = r as { resourceType: string; id: string };
        return [`${resourceType}/${id}`, r];
      }),
    ),
  };
  const server: Server = createServer({ cert: pem.cert, key: pem.key }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://stub');
    stub.requests!.push({
      path: `${url.pathname}${url.search}`,
      authorization: req.headers.authorization,
    });
    if (stub.failWith === 'hang') return;
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/fhir+json' });
      res.end(JSON.stringify(body));
    };
    const reply = (status: number, body: unknown) => {
      if (stub.delayMs) setTimeout(() => send(status, body), stub.delayMs);
      else send(status, body);
    };
    if (stub.failWith) return reply(stub.failWith, { resourceType: 'OperationOutcome' });
    const path = url.pathname.replace(/^\/fhir\//, '');
    if (path === 'Coverage' || path === 'Coverage/') {
      const patient = url.searchParams.get('patient');
      const entry = [...stub.resources!.values()]
        .filter(
          (r: any) =>
            r.resourceType === 'Coverage' &&
            (r.beneficiary?.reference ?? '').endsWith(`Patient/${patient}`) &&
            r.status === 'active',
        )
        .map((resource) => ({ resource, search: { mode: 'match' } }));
      return reply(200, { resourceType: 'Bundle', type: 'searchset', total: entry.length, entry });
    }
    const found = stub.resources!.get(path);
    return found ? reply(200, found) : reply(404, { resourceType: 'OperationOutcome' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  stub.origin = `https://127.0.0.1:${port}`;
  stub.base = `${stub.origin}/fhir`;
  stub.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return stub as FhirStub;
}
