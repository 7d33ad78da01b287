/**
 * The token events reach the real audit trail (sec-9): issuance, revocation, refusal and launch
 * each become one AuditEvent in the hash chain, naming the client and the token id, never the
 * token.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AuditEvent } from '@medplum/fhirtypes';
import { openAuditStore } from '../../../src/audit/index.js';
import { backendToken, basic, startHarness, tokenRequest } from './helpers.js';

test('sec-9: token events are AuditEvents in the chain, with token ids and never tokens', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'crdkit-authz-audit-'));
  const audit = await openAuditStore({ url: 'sqlite', dataDir: dir, instance: 'test-ehr:1' });
  const h = await startHarness({ audit });
  try {
    const hook = await h.authz.mintHookToken({
      clientId: 'crd-payer-a',
      patient: 'pat-1',
      service: 'order-sign-crd',
      declaredTypes: ['Coverage'],
      hookInstance: 'hi-1',
    });
    await h.authz.revoke(hook.access_token);
    const cc = await backendToken(h);
    await h.authz.createLaunch({ clientId: 'app-sym', patient: 'pat-2' });
    await tokenRequest(
      h,
      { grant_type: 'client_credentials' },
      basic('app-sym', 'wrong-secret-0123456789abcdef0123'),
    );
    assert.deepEqual(await audit.verify(), { ok: true, records: 5 });
    const events: AuditEvent[] = [];
    for await (const e of audit.export({})) events.push(e);
    const kinds = events.map((e) => e.subtype?.find((c) => c.code !== 'audit-read')?.code);
    assert.deepEqual(kinds.slice(0, 5), ['issued', 'revoked', 'issued', 'launch', 'refused']);
    const text = JSON.stringify(events);
    assert.ok(!text.includes(hook.access_token) && !text.includes(cc.json.access_token));
    assert.ok(text.includes('Patient/pat-1') && text.includes('hi-1'));
    assert.equal(events[4]!.outcome, '4');
    assert.equal(events[4]!.outcomeDesc, 'invalid_client');
  } finally {
    await h.close();
    await audit.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
