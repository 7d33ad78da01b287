/**
 * Discovery on the client: parsed and checked (found-31: keys and templates as given), cached
 * a day (found-16), fetched again after a hook error (found-17); request extensions built from
 * it (dev-3, dev-12).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DiscoveryCache,
  DiscoveryError,
  parseDiscovery,
  requestExtensions,
  serviceUrl,
  type DiscoveryService,
} from '../../../src/client/transport/index.js';
import { fixture, SKIP } from '../../crd/fixtures.js';

const BASE = 'https://payer.example.org/crd';

function service(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    hook: 'order-sign',
    id: 'order-sign-crd',
    title: 'Order sign',
    description: 'Coverage requirements',
    prefetch: {
      pt: 'Patient/{{context.patientId}}',
      cov: 'Coverage?patient={{context.patientId}}&status=active',
    },
    extension: {
      'davinci-crd.version': ['2.1', '2.2'],
      'davinci-crd.configuration-options': [
        {
          code: 'coverage-info',
          type: 'boolean',
          name: 'Coverage',
          description: 'd',
          default: true,
        },
        { code: 'max-cards', type: 'integer', name: 'Max', description: 'd', default: 10 },
      ],
    },
    ...over,
  };
}

const doc = (...services: unknown[]) => ({ services });

describe('parseDiscovery', () => {
  test('found-31: prefetch keys and templates are kept exactly as published', () => {
    const d = parseDiscovery(doc(service()));
    assert.deepEqual(d.problems, []);
    const s = d.services[0]!;
    assert.deepEqual(s.prefetch, service().prefetch as Record<string, string>);
    assert.deepEqual(Object.keys(s.prefetch), ['pt', 'cov']);
    assert.deepEqual(s.versions, ['2.1', '2.2']);
    assert.deepEqual(
      s.configurationOptions.map((o) => o.code),
      ['coverage-info', 'max-cards'],
    );
  });

  test('found-31: the IG discovery example is read in full, non-standard key names included', (t) => {
    const body = fixture('crd-ig/CRDServices.json') as { services: Array<{ prefetch: object }> };
    if (!body) return t.skip(SKIP);
    const d = parseDiscovery(body);
    assert.deepEqual(d.problems, []);
    assert.equal(d.services.length, 6);
    d.services.forEach((s, i) => assert.deepEqual(s.prefetch, body.services[i]!.prefetch));
    assert.deepEqual(d.services[0]?.versions, ['2.1', '2.2']);
  });

  test('found-33: unknown members are tolerated; the extension object is kept', () => {
    const d = parseDiscovery({
      services: [service({ future: 1, extension: { ...(service().extension as object), x: 2 } })],
      other: true,
    });
    assert.equal(d.services[0]?.extension.x, 2);
  });

  test('CDS Hooks: a document without a services array is refused', () => {
    for (const body of [null, [], {}, { services: {} }]) {
      assert.throws(
        () => parseDiscovery(body),
        (e: unknown) =>
          e instanceof DiscoveryError &&
          e.code === 'ERR_DISCOVERY_SHAPE' &&
          e.message === 'the discovery document has no "services" array',
      );
    }
  });

  test('CDS Hooks: invalid services are skipped, the others kept', () => {
    const d = parseDiscovery(
      doc(
        service(),
        service({ id: undefined }),
        service({ id: '..' }),
        service({ id: 'a/b' }),
        service({ hook: '' }),
        service({ id: 'x', prefetch: { p: 7 } }),
        service({ id: 'y', prefetch: JSON.parse('{"__proto__":"Patient/1"}') }),
        service(),
        'x',
      ),
    );
    assert.deepEqual(
      d.services.map((s) => s.id),
      ['order-sign-crd'],
    );
    assert.deepEqual(
      d.problems.map((p) => `${p.where}: ${p.reason}`),
      [
        'services[1]: "id" is missing or not a plain path segment',
        'services[2]: "id" is missing or not a plain path segment',
        'services[3]: "id" is missing or not a plain path segment',
        'services[4]: "hook" is missing',
        'services[5]: "prefetch" has a template that is not a string or is too long',
        'services[6]: is not usable JSON: a member name is reserved',
        'services[7]: "id" repeats an earlier service',
        'services[8]: is not an object',
      ],
    );
  });

  test('dev-4, dev-8: unusable configuration options and versions are left out, with problems', () => {
    const d = parseDiscovery(
      doc(
        service({
          extension: {
            'davinci-crd.version': ['2.2', 'two', 3],
            'davinci-crd.configuration-options': [
              { code: 'cost', type: 'boolean', name: 'Cost', description: 'd', default: true },
              { code: 'cost', type: 'boolean', name: 'Cost 2', description: 'd' },
              { code: 'max-cards', type: 'integer', name: 'Max', description: 'd', default: 'ten' },
              { code: 'claim', type: 'string', name: 'Claim', description: 'd' },
              { code: 'limits', type: 'boolean' },
            ],
          },
        }),
      ),
    );
    const s = d.services[0]!;
    assert.deepEqual(s.versions, ['2.2']);
    assert.deepEqual(
      s.configurationOptions.map((o) => o.code),
      ['cost'],
    );
    const at = 'services[0].extension.davinci-crd';
    assert.deepEqual(
      d.problems.map((p) => `${p.where}: ${p.reason}`),
      [
        `${at}.version: "davinci-crd.version" holds a value that is not major.minor`,
        `${at}.configuration-options[1]: "code" repeats an earlier option (dev-8)`,
        `${at}.configuration-options[2]: "default" does not match "type"`,
        `${at}.configuration-options[3]: "type" is not boolean or integer`,
        `${at}.configuration-options[4]: "name" or "description" is missing (dev-4)`,
      ],
    );
  });

  test('dev-1: a service listing no version is kept, with a problem', () => {
    const d = parseDiscovery(doc(service({ extension: {} })));
    assert.deepEqual(d.services[0]?.versions, []);
    assert.deepEqual(d.problems, [
      {
        where: 'services[0].extension.davinci-crd.version',
        reason: 'no CRD version is listed (dev-1)',
      },
    ]);
  });

  test('CDS Hooks: the service URL is {base}/cds-services/{id}', () => {
    assert.equal(
      serviceUrl(`${BASE}/`, { id: 'order-sign-crd' }),
      `${BASE}/cds-services/order-sign-crd`,
    );
    assert.throws(() => serviceUrl('http://payer.example.org', { id: 'a' }), DiscoveryError);
    assert.throws(() => serviceUrl(BASE, { id: '../x' }), DiscoveryError);
  });
});

describe('requestExtensions', () => {
  const s = parseDiscovery(doc(service())).services[0]!;

  test('dev-3: requestedVersion is the highest common version when several are listed', () => {
    assert.deepEqual(requestExtensions(s, { supportedVersions: ['2.1', '2.2'] }), {
      'davinci-crd.requestedVersion': '2.2',
    });
    assert.deepEqual(requestExtensions(s, { supportedVersions: ['2.1'] }), {
      'davinci-crd.requestedVersion': '2.1',
    });
  });

  test('dev-3: no common version is an error', () => {
    assert.throws(
      () => requestExtensions(s, { supportedVersions: ['3.1'] }),
      (e: unknown) =>
        e instanceof DiscoveryError &&
        e.code === 'ERR_DISCOVERY_VERSION' &&
        e.message === 'service "order-sign-crd" supports no CRD version this client supports',
    );
    const none: DiscoveryService = { ...s, versions: [] };
    assert.deepEqual(requestExtensions(none, { supportedVersions: ['2.2'] }), {});
  });

  test('dev-12: the client settings for advertised options are conveyed, others left out', () => {
    const ext = requestExtensions(s, {
      supportedVersions: ['2.2'],
      configuration: { 'coverage-info': false, 'max-cards': 5, 'not-offered': true },
    });
    assert.deepEqual(ext['davinci-crd.configuration'], { 'coverage-info': false, 'max-cards': 5 });
  });

  test('dev-12: a setting of the wrong type is an error', () => {
    const bad: Array<Record<string, number | boolean>> = [
      { 'max-cards': -1 },
      { 'max-cards': 1.5 },
      { 'coverage-info': 1 },
    ];
    for (const configuration of bad) {
      assert.throws(
        () => requestExtensions(s, { supportedVersions: ['2.2'], configuration }),
        (e: unknown) => e instanceof DiscoveryError && e.code === 'ERR_DISCOVERY_CONFIGURATION',
      );
    }
  });
});

describe('DiscoveryCache', () => {
  function setup(maxAgeMs?: number) {
    let now = 1_000_000;
    const urls: string[] = [];
    let version = 0;
    let failNext = false;
    const cache = new DiscoveryCache({
      now: () => now,
      ...(maxAgeMs !== undefined ? { maxAgeMs } : {}),
      fetch: async (url) => {
        urls.push(url);
        if (failNext) {
          failNext = false;
          throw new Error('unreachable');
        }
        version += 1;
        return doc(service({ title: `v${version}` }));
      },
    });
    return {
      cache,
      urls,
      advance: (ms: number) => (now += ms),
      failOnce: () => (failNext = true),
    };
  }
  const title = async (p: Promise<{ services: DiscoveryService[] }>) =>
    (await p).services[0]?.title;

  test('found-16: discovery is cached and fetched again once a day (default)', async () => {
    const { cache, urls, advance } = setup();
    assert.equal(await title(cache.get(BASE)), 'v1');
    advance(24 * 3_600_000 - 1);
    assert.equal(await title(cache.get(`${BASE}/`)), 'v1');
    advance(1);
    assert.equal(await title(cache.get(BASE)), 'v2');
    assert.deepEqual(urls, [`${BASE}/cds-services`, `${BASE}/cds-services`]);
  });

  test('found-16: maxAgeMs is configurable', async () => {
    const { cache, urls, advance } = setup(60_000);
    await cache.get(BASE);
    advance(60_000);
    await cache.get(BASE);
    assert.equal(urls.length, 2);
  });

  test('found-17: after invalidate (a hook error) the next get fetches again', async () => {
    const { cache, urls } = setup();
    await cache.get(BASE);
    cache.invalidate(BASE);
    assert.equal(await title(cache.get(BASE)), 'v2');
    assert.equal(await title(cache.refresh(BASE)), 'v3');
    assert.equal(urls.length, 3);
  });

  test('found-16: concurrent callers share one fetch; a failure is not cached', async () => {
    const { cache, urls, failOnce } = setup();
    failOnce();
    const [a, b] = await Promise.allSettled([cache.get(BASE), cache.get(BASE)]);
    assert.equal(a.status, 'rejected');
    assert.equal(b.status, 'rejected');
    assert.equal(urls.length, 1);
    assert.equal(await title(cache.get(BASE)), 'v1');
    assert.equal(urls.length, 2);
  });

  test('sec-2: only https base URLs are used', async () => {
    const { cache, urls } = setup();
    for (const base of ['http://payer.example.org', 'not a url', 'https://u:p@payer.example.org']) {
      await assert.rejects(
        cache.get(base),
        (e: unknown) => e instanceof DiscoveryError && e.code === 'ERR_DISCOVERY_URL',
      );
    }
    assert.equal(urls.length, 0);
  });

  test('CDS Hooks: an invalid document is an error and is not cached', async () => {
    let calls = 0;
    const cache = new DiscoveryCache({
      fetch: async () => (++calls === 1 ? { nope: true } : doc(service())),
    });
    await assert.rejects(cache.get(BASE), DiscoveryError);
    assert.equal((await cache.get(BASE)).services.length, 1);
  });
});
