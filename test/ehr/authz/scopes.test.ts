/**
 * SMART scopes: v1 and v2 parsing, normalisation to v2, coverage by a registered scope, and the
 * scopes a client may be granted in each flow.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  hookScopes,
  normalizeScope,
  parseResourceScope,
  permittedScopes,
} from '../../../src/ehr/authz/scopes.js';

const policy = (registered: string, refresh = true, launchable = true) => ({
  registered: registered.split(' '),
  refresh,
  launchable,
});

test('smart: v2 scopes parse, v1 scopes normalise to v2, malformed ones are not scopes', () => {
  assert.deepEqual(parseResourceScope('patient/Coverage.rs'), {
    context: 'patient',
    resourceType: 'Coverage',
    permissions: 'rs',
  });
  assert.deepEqual(parseResourceScope('user/Task.cu?status=ready'), {
    context: 'user',
    resourceType: 'Task',
    permissions: 'cu',
    query: 'status=ready',
  });
  assert.equal(normalizeScope('patient/Coverage.read'), 'patient/Coverage.rs');
  assert.equal(normalizeScope('user/*.write'), 'user/*.cud');
  assert.equal(normalizeScope('system/*.*'), 'system/*.cruds');
  assert.equal(normalizeScope('openid'), 'openid');
  for (const bad of [
    'patient/Coverage.sr',
    'patient/coverage.rs',
    'patient/Coverage.',
    'clinic/X.r',
    'patient/Coverage.read?x=1',
  ]) {
    assert.equal(parseResourceScope(bad), undefined, bad);
  }
});

test('smart: a registered scope covers narrower requests only, in the same context', () => {
  const p = policy('patient/*.rs user/Coverage.r launch openid fhirUser offline_access');
  assert.deepEqual(
    permittedScopes(
      [
        'patient/Coverage.rs',
        'patient/Patient.r',
        'patient/Coverage.read',
        'patient/Coverage.c',
        'user/Coverage.rs',
        'user/Coverage.r',
        'system/Coverage.r',
        'launch',
        'openid',
        'fhirUser',
        'offline_access',
        'online_access',
        'profile',
      ],
      p,
      'authorization_code',
    ),
    [
      'patient/Coverage.rs',
      'patient/Patient.r',
      'patient/Coverage.read',
      'user/Coverage.r',
      'launch',
      'openid',
      'fhirUser',
      'offline_access',
    ],
  );
});

test('smart: client credentials get system/ scopes only; launch and refresh need the client to allow them', () => {
  assert.deepEqual(
    permittedScopes(
      ['system/Patient.rs', 'patient/Patient.rs', 'openid'],
      policy('system/*.rs patient/*.rs openid'),
      'client_credentials',
    ),
    ['system/Patient.rs'],
  );
  assert.deepEqual(
    permittedScopes(
      ['launch', 'offline_access', 'patient/Patient.r'],
      policy('launch offline_access patient/*.rs', false, false),
      'authorization_code',
    ),
    ['patient/Patient.r'],
  );
});

test('found-21: hook scopes are read-only and name only the declared types', () => {
  assert.deepEqual(hookScopes(['Patient', 'Coverage', 'Patient']), [
    'patient/Patient.rs',
    'patient/Coverage.rs',
  ]);
});
