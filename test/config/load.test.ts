import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { checkConfig, ConfigError, loadConfig } from '../../src/config/load.js';

const valid = () => ({
  baseUrl: 'https://payer.test',
  tls: { cert: 'cert.pem', key: 'key.pem' },
  clients: [{ iss: 'https://ehr.test', jwksUri: 'https://ehr.test/jwks.json' }],
  rules: 'rules.yaml',
});

function refusal(raw: unknown): ConfigError {
  try {
    checkConfig(raw);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err;
  }
  assert.fail('the configuration was accepted');
}

describe('configuration checks name the key', () => {
  it('accepts a minimal valid configuration', () => {
    assert.doesNotThrow(() => checkConfig(valid()));
  });

  it('an unknown top-level key stops start-up, naming it', () => {
    const err = refusal({ ...valid(), rulez: 'x' });
    assert.equal(err.key, 'rulez');
    assert.equal(err.message, 'rulez: unknown key');
  });

  it('an unknown nested key is named by its path', () => {
    const err = refusal({ ...valid(), tls: { cert: 'a', key: 'b', minVersion: 'TLSv1' } });
    assert.equal(err.key, 'tls.minVersion');
  });

  it('sec-2: a plain-http baseUrl is refused', () => {
    assert.equal(refusal({ ...valid(), baseUrl: 'http://payer.test' }).key, 'baseUrl');
  });

  it('sec-2: a plain-http jwksUri is refused, naming the client', () => {
    const err = refusal({ ...valid(), clients: [{ iss: 'x', jwksUri: 'http://ehr.test/jwks' }] });
    assert.equal(err.key, 'clients[0].jwksUri');
  });

  it('sec-2: a plain-http fhirServers entry is refused', () => {
    const clients = [{ iss: 'x', jwksUri: 'https://e/j', fhirServers: ['http://ehr.test/fhir'] }];
    assert.equal(refusal({ ...valid(), clients }).key, 'clients[0].fhirServers[0]');
  });

  it('a client needs exactly one of jwks and jwksUri', () => {
    assert.equal(refusal({ ...valid(), clients: [{ iss: 'x' }] }).key, 'clients[0]');
    const both = [{ iss: 'x', jwksUri: 'https://e/j', jwks: { keys: [{ kty: 'EC' }] } }];
    assert.equal(refusal({ ...valid(), clients: both }).key, 'clients[0]');
  });

  it('duplicate issuers are refused', () => {
    const c = { iss: 'x', jwksUri: 'https://e/j' };
    assert.equal(refusal({ ...valid(), clients: [c, c] }).key, 'clients[1].iss');
  });

  it('a wrong type is named', () => {
    assert.equal(refusal({ ...valid(), listen: { port: '8443' } }).key, 'listen.port');
  });

  it('a missing required key is named', () => {
    const { rules: _omit, ...rest } = valid();
    assert.equal(refusal(rest).key, 'rules');
  });

  it('loadConfig names a missing file and resolves paths against the config folder', () => {
    const dir = mkdtempSync(join(tmpdir(), 'crdkit-config-'));
    writeFileSync(join(dir, 'crdkit.json'), JSON.stringify(valid()));
    assert.throws(
      () => loadConfig(join(dir, 'crdkit.json')),
      (err: ConfigError) => {
        assert.equal(err.key, 'tls.cert');
        assert.ok(err.message.includes(join(dir, 'cert.pem')));
        return true;
      },
    );
    for (const f of ['cert.pem', 'key.pem', 'rules.yaml']) writeFileSync(join(dir, f), '');
    const config = loadConfig(join(dir, 'crdkit.json'));
    assert.equal(config.rules, join(dir, 'rules.yaml'));
    assert.equal(config.listen.port, 8443);
    assert.equal(config.auth.clockSkewSeconds, 60);
  });

  it('loadConfig reports invalid JSON without a stack trace', () => {
    const dir = mkdtempSync(join(tmpdir(), 'crdkit-config-'));
    writeFileSync(join(dir, 'bad.json'), '{ "baseUrl": ');
    assert.throws(() => loadConfig(join(dir, 'bad.json')), /is not valid JSON/);
  });
});

describe('configuration messages for common mistakes', () => {
  it('a misspelt key is reported as unknown, not as the missing one', () => {
    const { rules, ...rest } = valid();
    assert.equal(refusal({ ...rest, rule: rules }).message, 'rule: unknown key');
  });

  it('a bad log level lists the allowed values', () => {
    assert.match(refusal({ ...valid(), log: { level: 'loud' } }).message, /one of fatal, error/);
  });
});

describe('the audit key (issue: `audit: "postgres://…"`)', () => {
  it('found-37: "audit" may be a store URL or an object; errors inside it name the key', () => {
    assert.doesNotThrow(() => checkConfig({ ...valid(), audit: 'postgres://db.test/crd' }));
    assert.doesNotThrow(() => checkConfig({ ...valid(), audit: { store: 'sqlite' } }));
    assert.equal(refusal({ ...valid(), audit: { stor: 'sqlite' } }).key, 'audit.stor');
    assert.equal(refusal({ ...valid(), audit: 'mysql://db.test' }).key, 'audit');
    assert.equal(refusal({ ...valid(), audit: { retentionDays: 'x' } }).key, 'audit.retentionDays');
  });
});
