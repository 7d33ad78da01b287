/**
 * The access review (sec-8) over a real audit trail (SQLite, and PostgreSQL when
 * `CRDKIT_TEST_PG` is set): each kind of finding appears for a crafted bad access, and a clean
 * hook call (token issued, three reads of the declared types for its patient, revoked) yields none.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import type { AuditEvent } from '@medplum/fhirtypes';
import { writeNdjson, type AuditStore } from '../../../src/audit/index.js';
import {
  reviewAccesses,
  type Finding,
  type FindingKind,
  type ReviewOptions,
} from '../../../src/ehr/review.js';
import { BACKENDS } from '../../audit/helpers.js';
import { access, at, cleanHookCall, CLIENT, issue, revoke, SERVICE } from './helpers.js';

const of = (findings: Finding[], kind: FindingKind) => findings.filter((f) => f.kind === kind);

for (const { name, make, skip } of BACKENDS) {
  describe(`access review on ${name}`, { ...(skip ? { skip } : {}) }, () => {
    /** Runs `build` on a fresh store, then reviews the whole trail. */
    async function review(build: (store: AuditStore) => Promise<void>, options?: ReviewOptions) {
      const backend = await make();
      const store = await backend.open();
      try {
        await build(store);
        return await reviewAccesses(store.export({}), options);
      } finally {
        await store.close();
        await backend.cleanup();
      }
    }

    test('sec-8: a clean hook call (token issued, three reads of the declared types for its patient, revoked) yields no finding', async () => {
      const report = await review(async (store) => {
        await cleanHookCall(store, 0);
      });
      assert.deepEqual(report.findings, []);
      assert.equal(report.accesses, 3);
      assert.equal(report.tokenEvents, 2);
      assert.deepEqual(report.clients, [
        {
          client: CLIENT.id,
          clientName: CLIENT.name,
          hookTokens: 1,
          delegateTokens: 0,
          accesses: 3,
          refused: 0,
          patients: 1,
          findings: 0,
        },
      ]);
      assert.ok(Object.values(report.counts).every((n) => n === 0));
    });

    test('sec-8: other-patient: data of another patient returned, or asked for and refused', async () => {
      let clean!: string;
      let bad!: { hookInstance: string; tokenId: string };
      const report = await review(async (store) => {
        clean = (await cleanHookCall(store, 0)).hookInstance;
        const call = await issue(store, 10);
        bad = call;
        await store.appendFhirAccess(access(call, 11, 'Patient/p2'));
        await store.appendFhirAccess(
          access(call, 12, 'Coverage/c7', {
            action: 'search',
            resources: [],
            patients: ['Patient/p3'],
            status: 403,
            outcome: 'minor-failure',
            errorCode: 'ERR_PATIENT_MISMATCH',
          }),
        );
        await revoke(store, call, 15);
      });
      const found = of(report.findings, 'other-patient');
      assert.equal(found.length, 2);
      const [returned, asked] = found;
      assert.equal(returned!.client, CLIENT.id);
      assert.equal(returned!.hookInstance, bad.hookInstance);
      assert.equal(returned!.tokenId, bad.tokenId);
      assert.equal(returned!.at, at(11).toISOString());
      assert.deepEqual(returned!.references, ['Patient/p2']);
      assert.equal(returned!.status, 200);
      assert.match(
        returned!.detail,
        /^returned data of Patient\/p2; the token is bound to Patient\/p1/,
      );
      assert.deepEqual(asked!.references, ['Patient/p3']);
      assert.equal(asked!.errorCode, 'ERR_PATIENT_MISMATCH');
      assert.match(asked!.detail, /^asked for Patient\/p3; .*refused 403 ERR_PATIENT_MISMATCH/);
      assert.ok(report.findings.every((f) => f.hookInstance !== clean));
      assert.equal(report.clients[0]!.patients, 2, 'p1 and p2: data was returned');
    });

    test('sec-8: undeclared-type: a resource type the service never declared in its prefetch', async () => {
      let clean!: string;
      const report = await review(async (store) => {
        clean = (await cleanHookCall(store, 0)).hookInstance;
        const call = await issue(store, 10);
        await store.appendFhirAccess(
          access(call, 11, 'Condition/cond9', { declaredTypes: ['Patient', 'Coverage'] }),
        );
        // A search of a declared type whose answer held an undeclared one.
        await store.appendFhirAccess(
          access(call, 12, 'Coverage/c1', {
            action: 'search',
            resources: ['Coverage/c1', 'Organization/o1'],
            declaredTypes: ['Patient', 'Coverage'],
          }),
        );
        await revoke(store, call, 15);
      });
      const found = of(report.findings, 'undeclared-type');
      assert.equal(found.length, 2);
      assert.equal(found[0]!.resourceType, 'Condition');
      assert.deepEqual(found[0]!.references, ['Condition/cond9']);
      assert.equal(
        found[0]!.detail,
        `Condition not declared in the prefetch of service ${SERVICE} ` +
          '(declared: Patient, Coverage; answered 200)',
      );
      assert.deepEqual(found[1]!.references, ['Organization/o1']);
      assert.ok(report.findings.every((f) => f.hookInstance !== clean));
      assert.deepEqual(
        report.findings.map((f) => f.kind),
        ['undeclared-type', 'undeclared-type'],
      );
    });

    test('sec-8: after-hook: accesses after the revocation or the expiry, answered or refused, and a delegate token after its subject was revoked', async () => {
      let clean!: string;
      let revoked!: string;
      let delegate!: string;
      const report = await review(async (store) => {
        clean = (await cleanHookCall(store, 0)).hookInstance;
        // Revoked at 15 s; read at 14 s (fine) and again at 40 s (answered: the API missed it).
        const a = await issue(store, 10);
        revoked = a.tokenId;
        await store.appendFhirAccess(access(a, 14, 'Coverage/c1'));
        await revoke(store, a, 15);
        await store.appendFhirAccess(access(a, 40, 'Coverage/c1'));
        // Never revoked, expired at 80 s; read at 90 s and refused.
        const b = await issue(store, 50);
        await store.appendFhirAccess(
          access(b, 90, 'Coverage/c1', {
            status: 401,
            outcome: 'minor-failure',
            errorCode: 'ERR_TOKEN_EXPIRED',
          }),
        );
        // A delegate token exchanged from c's token, used after c's token was revoked.
        const c = await issue(store, 100);
        delegate = `jti-delegate-${c.start}`;
        await store.appendToken({
          at: at(101),
          instance: 'ehr-test:1',
          event: 'exchanged',
          client: CLIENT,
          patient: c.patient,
          hookInstance: c.hookInstance,
          audience: 'https://dtr.payer.example',
          actors: ['https://dtr.payer.example'],
          tokenId: delegate,
          subjectTokenId: c.tokenId,
          expiresAt: at(130),
        });
        await revoke(store, c, 105);
        await store.appendFhirAccess(
          access(c, 110, 'Coverage/c1', {
            actors: ['https://dtr.payer.example'],
            tokenId: delegate,
          }),
        );
        // The hook call ended (a revocation naming the hookInstance only), then a read.
        const d = await issue(store, 140);
        await store.appendToken({
          at: at(145),
          instance: 'ehr-test:1',
          event: 'revoked',
          client: CLIENT,
          hookInstance: d.hookInstance,
        });
        await store.appendFhirAccess(access(d, 150, 'Coverage/c1'));
      });
      const found = of(report.findings, 'after-hook');
      assert.deepEqual(
        found.map((f) => [f.at, f.tokenId, f.status]),
        [
          [at(40).toISOString(), revoked, 200],
          [at(90).toISOString(), found[1]!.tokenId, 401],
          [at(110).toISOString(), delegate, 200],
          [at(150).toISOString(), found[3]!.tokenId, 200],
        ],
      );
      assert.match(found[3]!.detail, /^5\.0 s after the hook call ended at /);
      assert.match(found[0]!.detail, /^25\.0 s after the token was revoked at .*answered 200/);
      assert.match(found[1]!.detail, /^10\.0 s after the token expired at .*refused 401/);
      assert.match(found[2]!.detail, /after the token it was exchanged from was revoked/);
      assert.deepEqual(found[2]!.actors, ['https://dtr.payer.example']);
      assert.ok(report.findings.every((f) => f.hookInstance !== clean));
      assert.equal(report.clients[0]!.delegateTokens, 1);
    });

    test('sec-8: refused: scope and patient refusals with their error code', async () => {
      let clean!: string;
      const report = await review(async (store) => {
        clean = (await cleanHookCall(store, 0)).hookInstance;
        const call = await issue(store, 10);
        await store.appendFhirAccess(
          access(call, 11, 'ServiceRequest/sr1', {
            action: 'update',
            status: 403,
            outcome: 'minor-failure',
            errorCode: 'ERR_SCOPE',
          }),
        );
        await revoke(store, call, 15);
      });
      assert.equal(report.findings.length, 1);
      const [refused] = report.findings;
      assert.equal(refused!.kind, 'refused');
      assert.equal(refused!.status, 403);
      assert.equal(refused!.errorCode, 'ERR_SCOPE');
      assert.equal(refused!.detail, 'update ServiceRequest refused 403 ERR_SCOPE');
      assert.notEqual(refused!.hookInstance, clean);
      assert.equal(report.clients[0]!.refused, 1);
    });

    test('sec-8: volume: over maxPerToken accesses with one token, over maxPerClientPerHour by one client, a hook call far above its client median', async () => {
      let clean!: string[];
      let busy!: { hookInstance: string; tokenId: string };
      let outlier!: string;
      const report = await review(async (store) => {
        clean = [];
        for (let i = 0; i < 5; i++) clean.push((await cleanHookCall(store, i * 10)).hookInstance);
        // 21 accesses with one token: over the default 20.
        const call = await issue(store, 100, { lifetime: 60 });
        busy = call;
        for (let i = 0; i < 21; i++) {
          await store.appendFhirAccess(access(call, 101 + i, 'Coverage/c1'));
        }
        await revoke(store, call, 130);
        // 20 accesses (not over 20) but more than 5 times the client's median of 3.
        const other = await issue(store, 200, { lifetime: 60 });
        outlier = other.hookInstance;
        for (let i = 0; i < 20; i++) {
          await store.appendFhirAccess(access(other, 201 + i, 'ServiceRequest/sr1'));
        }
        await revoke(store, other, 230);
      });
      const found = of(report.findings, 'volume');
      assert.equal(found.length, 2, JSON.stringify(found));
      const [perToken, perHook] = found;
      assert.equal(perToken!.tokenId, busy.tokenId);
      assert.equal(perToken!.hookInstance, busy.hookInstance);
      assert.equal(perToken!.detail, '21 accesses with one token (more than 20)');
      assert.equal(perToken!.at, at(121).toISOString(), 'the 21st access');
      assert.equal(perHook!.hookInstance, outlier);
      assert.match(perHook!.detail, /^20 accesses in one hook call; this client's median is 3/);
      assert.ok(report.findings.every((f) => !clean.includes(f.hookInstance!)));

      // The same trail with a per-client limit of 50 an hour (it made 56 accesses in 4 minutes).
      const hourly = await review(
        async (store) => {
          for (let i = 0; i < 5; i++) await cleanHookCall(store, i * 10);
          const call = await issue(store, 100, { lifetime: 60 });
          for (let i = 0; i < 41; i++) {
            await store.appendFhirAccess(access(call, 101 + (i % 20), 'Coverage/c1'));
          }
          await revoke(store, call, 130);
        },
        { maxPerClientPerHour: 50, maxPerToken: 100, medianFactor: 0 },
      );
      assert.deepEqual(
        hourly.findings.map((f) => [f.kind, f.client, f.hookInstance, f.tokenId, f.at, f.detail]),
        [
          [
            'volume',
            CLIENT.id,
            undefined,
            undefined,
            at(1).toISOString(),
            `56 accesses within the hour from ${at(1).toISOString()} (more than 50)`,
          ],
        ],
      );
    });

    test('sec-8: unknown-token: an access whose token was never issued, only when the window covers issuance', async () => {
      let clean!: string;
      const build = async (store: AuditStore) => {
        clean = (await cleanHookCall(store, 0)).hookInstance;
        const ghost = {
          hookInstance: 'h-ghost',
          tokenId: 'jti-never-issued',
          patient: 'Patient/p1',
          start: 10,
        };
        await store.appendFhirAccess(access(ghost, 11, 'Coverage/c1'));
      };
      const report = await review(build);
      const found = of(report.findings, 'unknown-token');
      assert.equal(found.length, 1);
      assert.equal(found[0]!.tokenId, 'jti-never-issued');
      assert.equal(
        found[0]!.detail,
        'token jti-never-issued was never issued in the trail (answered 200)',
      );
      assert.ok(report.findings.every((f) => f.hookInstance !== clean));
      assert.equal(report.findings.length, 1);

      // A trail read from 10 s on cannot hold a token issued earlier: no unknown-token then.
      const partial = await review(build, { since: at(10) });
      assert.equal(partial.accesses, 1);
      assert.deepEqual(partial.findings, []);
      assert.deepEqual(partial.window, { since: at(10).toISOString() });
    });

    test('sec-8: the review reads an exported NDJSON file the same as the store', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'crdkit-review-'));
      const backend = await make();
      const store = await backend.open();
      try {
        await cleanHookCall(store, 0);
        const call = await issue(store, 10);
        await store.appendFhirAccess(access(call, 11, 'Patient/p2'));
        const file = join(dir, 'trail.ndjson');
        const out = createWriteStream(file);
        await writeNdjson(store.export({}), out);
        out.end();
        await once(out, 'finish');
        const fromStore = await reviewAccesses(store.export({}));
        async function* lines(): AsyncIterable<AuditEvent> {
          for await (const line of createInterface({ input: createReadStream(file) })) {
            if (line) yield JSON.parse(line) as AuditEvent;
          }
        }
        const fromFile = await reviewAccesses(lines());
        assert.deepEqual(fromFile, fromStore);
        assert.deepEqual(
          fromFile.findings.map((f) => f.kind),
          ['other-patient'],
        );
      } finally {
        await store.close();
        await backend.cleanup();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
