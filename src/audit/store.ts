/**
 * The audit store: builds each record (AuditEvent, chain link, encrypted payload), appends it
 * fail-closed, verifies the chain, exports AuditEvents (itself audited) and purges payloads past
 * retention. The database behind it is SQLite or PostgreSQL.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import { userInfo } from 'node:os';
import { ConfigError } from '../config/load.js';
import type { AuditBackend } from './backend.js';
import {
  auditEventFromFhirAccess,
  auditEventFromSecurity,
  auditEventFromToken,
  hookDigests,
} from './balp.js';
import { canonicalJson, recordId, type RecordKind, type StoredPayload } from './chain.js';
import type { AppendEntry } from './entry.js';
import { PayloadCipher } from './cipher.js';
import { AuditUnavailableError, driverCode } from './errors.js';
import { PgAuditBackend } from './pg-backend.js';
import { ThreadedSqliteAuditBackend } from './sqlite-thread.js';
import type * as T from './types.js';
import {
  checkSecurityInput,
  cleanFhirAccessInput,
  cleanHookInput,
  cleanTokenInput,
} from './validate.js';
import { verifyChain } from './verify.js';

const DAY_MS = 86_400_000;
const DEFAULT_RETENTION_DAYS = 30;
const EXPORT_PAGE = 500;

function osUser(): string {
  try {
    return userInfo().username || 'local operator';
  } catch {
    return 'local operator';
  }
}

class Store implements T.AuditStore {
  #closed = false;

  constructor(
    private readonly backend: AuditBackend,
    private readonly opts: T.OpenAuditStoreOptions,
    private readonly cipher: PayloadCipher | undefined,
    private readonly now: () => Date,
  ) {}

  async appendHook(raw: T.HookAuditInput): Promise<{ id: string }> {
    const input = cleanHookInput(raw);
    const id = recordId();
    // sec-6: the bodies are kept only encrypted, and only with a key configured.
    let payload: StoredPayload | undefined;
    if (this.cipher && (input.requestBody || input.responseBody)) {
      const seal = (part: 'request' | 'response', body?: Buffer) =>
        body ? this.cipher!.encrypt(id, part, body) : null;
      payload = {
        keyId: this.cipher.currentKeyId,
        request: seal('request', input.requestBody),
        response: seal('response', input.responseBody),
      };
    }
    const retentionMs = (this.opts.retentionDays ?? DEFAULT_RETENTION_DAYS) * DAY_MS;
    const expiresAt = payload ? this.now().getTime() + retentionMs : null;
    // The AuditEvent is built where the record is linked (the SQLite thread for SQLite), from
    // the call without its bodies: only their digests go.
    const { requestBody: _request, responseBody: _response, ...call } = input;
    const event = { hook: call, digests: hookDigests(input) };
    return this.#append(id, 'hook', input.at, input.patient ?? null, event, expiresAt, payload);
  }

  async appendSecurity(input: T.SecurityAuditInput): Promise<{ id: string }> {
    checkSecurityInput(input);
    const id = recordId();
    const event = auditEventFromSecurity(input, id);
    return this.#append(id, 'security', input.at, input.patient ?? null, event, null, undefined);
  }

  async appendFhirAccess(raw: T.FhirAccessAuditInput): Promise<{ id: string }> {
    const input = cleanFhirAccessInput(raw);
    const id = recordId();
    const event = auditEventFromFhirAccess(input, id);
    const patient = input.contextPatient ?? input.patients[0] ?? null;
    return this.#append(id, 'fhir-access', input.at, patient, event, null, undefined);
  }

  async appendToken(raw: T.TokenAuditInput): Promise<{ id: string }> {
    const input = cleanTokenInput(raw);
    const id = recordId();
    const event = auditEventFromToken(input, id);
    return this.#append(id, 'token', input.at, input.patient ?? null, event, null, undefined);
  }

  async #append(
    id: string,
    kind: RecordKind,
    at: Date,
    patient: string | null,
    event: AuditEvent | Extract<AppendEntry['event'], object>,
    expiresAt: number | null,
    payload: StoredPayload | undefined,
  ): Promise<{ id: string }> {
    if (this.#closed) throw new AuditUnavailableError('closed');
    const fields = {
      id,
      instance: this.opts.instance,
      kind,
      recordedAt: at.getTime(),
      patient,
      expiresAt,
    };
    const recorded = 'hook' in event ? event : canonicalJson(event);
    try {
      await this.backend.append({ fields, event: recorded, ...(payload ? { payload } : {}) });
    } catch (err) {
      // found-37: no record, no answer; the caller turns this into a 503.
      throw new AuditUnavailableError(driverCode(err));
    }
    return { id };
  }

  verify(): Promise<T.VerifyResult> {
    return verifyChain(this.backend);
  }

  async *export(filter: T.ExportFilter): AsyncIterable<AuditEvent> {
    const window = [
      filter.since && `since=${filter.since.toISOString()}`,
      filter.until && `until=${filter.until.toISOString()}`,
    ].filter(Boolean);
    // found-38: reading the audit trail is itself recorded, before anything is read.
    await this.appendSecurity({
      at: this.now(),
      instance: this.opts.instance,
      kind: 'audit-read',
      reader: filter.reader ?? osUser(),
      detail: ['export', ...window].join(' '),
      ...(filter.patient ? { patient: filter.patient } : {}),
    });
    const maxSeq = (await this.backend.head()).seq;
    const since = filter.since?.getTime();
    const until = filter.until?.getTime();
    for (let afterSeq = 0; ;) {
      const page = await this.backend.page({
        afterSeq,
        maxSeq,
        limit: EXPORT_PAGE,
        ...(since !== undefined ? { since } : {}),
        ...(until !== undefined ? { until } : {}),
        ...(filter.patient !== undefined ? { patient: filter.patient } : {}),
      });
      for (const record of page) yield JSON.parse(record.event) as AuditEvent;
      if (page.length < EXPORT_PAGE) return;
      afterSeq = page[page.length - 1]!.seq;
    }
  }

  async readPayloads(id: string, reader?: string): Promise<T.AuditPayloads | undefined> {
    await this.appendSecurity({
      at: this.now(),
      instance: this.opts.instance,
      kind: 'audit-read',
      reader: reader ?? osUser(),
      detail: 'payload',
    });
    const stored = await this.backend.payload(id);
    if (!stored || !this.cipher) return undefined;
    const open = (part: 'request' | 'response', sealed: Buffer | null) =>
      sealed ? this.cipher!.decrypt(stored.keyId, id, part, sealed) : undefined;
    const request = open('request', stored.request);
    const response = open('response', stored.response);
    return {
      keyId: stored.keyId,
      ...(request ? { request } : {}),
      ...(response ? { response } : {}),
    };
  }

  async purge(now: Date = this.now()): Promise<{ payloadsRemoved: number }> {
    return { payloadsRemoved: await this.backend.purge(now.getTime()) };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.backend.close();
  }
}

/**
 * Opens the audit store `opts.url` names, creating or migrating its schema: `sqlite` keeps
 * `audit.db` in `dataDir`; a `postgres://` URL shares one chain among every instance. Throws a
 * `ConfigError` naming `audit…` for a bad URL or key, or a PostgreSQL that cannot be opened.
 *
 * @example
 * ```ts
 * const audit = await openAuditStore({ url: 'sqlite', dataDir: '.crdkit', instance: 'host:42' });
 * await audit.appendHook(input); // before the response is sent; throws 503 when it cannot
 * ```
 */
export async function openAuditStore(opts: T.OpenAuditStoreOptions): Promise<T.AuditStore> {
  const cipher = opts.encryption ? new PayloadCipher(opts.encryption) : undefined;
  const days = opts.retentionDays;
  if (days !== undefined && !(Number.isFinite(days) && days > 0)) {
    throw new ConfigError('audit.retentionDays', 'must be a positive number of days');
  }
  const now = opts.now ?? (() => new Date());
  if (opts.url === 'sqlite') {
    return new Store(await ThreadedSqliteAuditBackend.open(opts.dataDir), opts, cipher, now);
  }
  if (/^postgres(?:ql)?:\/\//.test(opts.url)) {
    const backend = await PgAuditBackend.open(opts.url).catch((err: unknown) => {
      // The URL may hold a password: name the key and the driver's code, never the URL.
      throw new ConfigError('audit', `PostgreSQL could not be opened (${driverCode(err)})`);
    });
    return new Store(backend, opts, cipher, now);
  }
  throw new ConfigError('audit', 'must be "sqlite" or a postgres:// or postgresql:// URL');
}
