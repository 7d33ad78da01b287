/**
 * Opaque resource ids for payers (sec-7). A payer never sees the EHR's internal ids: each
 * (payer, type, internal id) gets an id computed as HMAC-SHA-256 under a per-installation secret,
 * so ids differ per payer, and nothing about a business identifier or an internal id can be
 * learnt from them. The reverse mapping is kept in SQLite, so ids survive restarts and a payer's
 * id is resolvable only for that payer.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { Resource } from '@medplum/fhirtypes';
import { CdsError } from '../cds/outcome.js';
import { migrate, openSqlite, type Database } from '../store/sqlite.js';
import { FHIR_ID, rewriteIds, splitReference } from './ids/references.js';

export { exposesIdentifier, idRelatedTo, identifierValues } from './ids/guard.js';
export { parseLocalReference, rewriteIds, splitReference, FHIR_ID } from './ids/references.js';

/** Length of an opaque id: 32 base64url characters (192 bits), well under FHIR's 64. */
export const OPAQUE_ID_LENGTH = 32;

const MIGRATIONS = [
  `CREATE TABLE opaque_ids (
    payer TEXT NOT NULL,
    type TEXT NOT NULL,
    opaque TEXT NOT NULL,
    internal TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (payer, type, opaque),
    UNIQUE (payer, type, internal)
  ) WITHOUT ROWID;
  CREATE TABLE opaque_id_secret (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    secret BLOB NOT NULL
  );`,
];

/** How many recent mappings are remembered in memory (each skips one SQLite write). */
const CACHE_SIZE = 10_000;

/** The id mapping's error codes: an unknown or malformed id received (400), a setup fault (500). */
const ID_ERRORS = {
  ERR_ID_UNKNOWN: 400,
  ERR_ID_INVALID: 400,
  ERR_ID_CONFIG: 500,
} as const;

/** A failure of the id mapping. An id a payer was never given is never passed on. */
export class OpaqueIdError extends CdsError {
  override name = 'OpaqueIdError';

  /** `where` names the element at fault (`id`, `reference`), never the value. */
  constructor(code: keyof typeof ID_ERRORS, message: string, where?: string) {
    const status = ID_ERRORS[code];
    super(status, code, message, status === 500 ? 'exception' : 'value', where);
  }
}

export interface OpenOpaqueIdsOptions {
  /** The SQLite file of the mapping (may be the resource store's file) or `:memory:`. */
  path: string;
  /** The FHIR base URL: absolute references to it are rewritten like relative ones. */
  baseUrl: string;
  /**
   * The per-installation secret (at least 32 bytes). Without it, one is generated on first use
   * and kept in the mapping's database: whoever can read that file can read the mapping anyway.
   */
  secret?: Buffer | string;
}

const TYPE = /^[A-Z][A-Za-z]{1,63}$/;

function checkPayer(payer: string): void {
  if (typeof payer !== 'string' || payer.length === 0 || payer.length > 256) {
    throw new OpaqueIdError('ERR_ID_CONFIG', 'the grant names no valid payer for the id mapping');
  }
}

/**
 * The id mapping of one installation. `outgoing` and `incoming` translate whole resources
 * (their id, every reference, Bundle entries and full URLs); `toOpaque` and `toInternal` single
 * ids. Grants without a payer (the EHR's own apps) are not mapped: the caller skips this class.
 *
 * @example
 * ```ts
 * const ids = openOpaqueIds({ path: 'ehr.db', baseUrl: 'https://ehr.example/fhir' });
 * const seen = ids.outgoing('example-payer', coverage); // ids and references opaque
 * const back = ids.incoming('example-payer', seen);     // internal again
 * ```
 */
export class OpaqueIds {
  readonly #db: Database;
  readonly #ownsDb: boolean;
  readonly #secret: Buffer;
  readonly #baseUrl: string;
  readonly #cache = new Map<string, string>();
  readonly #insert;
  readonly #lookup;
  readonly #reverse;

  constructor(db: Database, opts: { baseUrl: string; secret?: Buffer | string; ownsDb?: boolean }) {
    this.#db = db;
    this.#ownsDb = opts.ownsDb ?? false;
    this.#baseUrl = opts.baseUrl.replace(/\/+$/, '');
    migrate(db, 'ehr-opaque-ids', MIGRATIONS);
    this.#secret = opts.secret !== undefined ? toSecret(opts.secret) : storedSecret(db);
    this.#insert = db.prepare(
      'INSERT OR IGNORE INTO opaque_ids (payer, type, opaque, internal, created_at) VALUES (?, ?, ?, ?, ?)',
    );
    this.#lookup = db.prepare(
      'SELECT internal FROM opaque_ids WHERE payer = ? AND type = ? AND opaque = ?',
    );
    this.#reverse = db.prepare(
      'SELECT opaque FROM opaque_ids WHERE payer = ? AND type = ? AND internal = ?',
    );
  }

  /** The id `payer` sees for the resource `type/internalId`; the same on every call. */
  toOpaque(payer: string, type: string, internalId: string): string {
    checkPayer(payer);
    const key = JSON.stringify([payer, type, internalId]);
    const cached = this.#cache.get(key);
    if (cached) return cached;
    const opaque = createHmac('sha256', this.#secret)
      .update(key)
      .digest('base64url')
      .slice(0, OPAQUE_ID_LENGTH)
      .replace(/_/g, '.');
    this.#insert.run(payer, type, opaque, internalId, Date.now());
    // A collision of 192-bit values is not expected; if it ever happened the row kept would name
    // another resource, and this id must then not be handed out.
    const stored = this.#reverse.pluck().get(payer, type, internalId) as string | undefined;
    if (stored !== opaque) {
      throw new OpaqueIdError('ERR_ID_CONFIG', 'the opaque id could not be assigned');
    }
    this.#remember(key, opaque);
    return opaque;
  }

  /** The internal id behind `payer`'s `opaqueId` of `type`; undefined when it was never issued. */
  toInternal(payer: string, type: string, opaqueId: string): string | undefined {
    checkPayer(payer);
    if (!TYPE.test(type) || !FHIR_ID.test(opaqueId)) return undefined;
    return this.#lookup.pluck().get(payer, type, opaqueId) as string | undefined;
  }

  /**
   * A copy of `resource` as `payer` sees it: its id, every relative reference and every absolute
   * one to this base URL, and in a Bundle each `fullUrl` and resource, mapped to opaque ids.
   * `#local`, `urn:uuid:` and other servers' references are left as they are.
   */
  outgoing<T extends Resource>(payer: string, resource: T): T {
    checkPayer(payer);
    const run = this.#db.transaction(() =>
      rewriteIds(resource, {
        id: (type, id) => this.toOpaque(payer, type, id),
        reference: (ref) => {
          const local = splitReference(ref, this.#baseUrl);
          if (!local) return ref;
          const opaque = this.toOpaque(payer, local.type, local.id);
          return `${local.base}${local.type}/${opaque}${local.history ?? ''}`;
        },
      }),
    );
    return run();
  }

  /**
   * A copy of `resource` received from `payer` with its id and references made internal again.
   * An id `payer` was never given is an `OpaqueIdError` (400): it is never passed through.
   */
  incoming<T extends Resource>(payer: string, resource: T): T {
    checkPayer(payer);
    const internal = (type: string, id: string, where: string) => {
      const found = this.toInternal(payer, type, id);
      if (!found)
        throw new OpaqueIdError('ERR_ID_UNKNOWN', `the ${where} names an unknown id`, where);
      return found;
    };
    return rewriteIds(resource, {
      id: (type, id) => internal(type, id, 'id'),
      reference: (ref) => {
        const local = splitReference(ref, this.#baseUrl);
        if (!local) {
          if (/^[A-Z][A-Za-z]+\/[^/]/.test(ref) && !ref.includes('?')) {
            throw new OpaqueIdError('ERR_ID_INVALID', 'a reference is malformed', 'reference');
          }
          return ref;
        }
        const id = internal(local.type, local.id, 'reference');
        return `${local.base}${local.type}/${id}${local.history ?? ''}`;
      },
    });
  }

  /** Closes the database when this mapping opened it. */
  close(): void {
    if (this.#ownsDb) this.#db.close();
  }

  #remember(key: string, opaque: string): void {
    if (this.#cache.size >= CACHE_SIZE) {
      const oldest = this.#cache.keys().next().value;
      if (oldest !== undefined) this.#cache.delete(oldest);
    }
    this.#cache.set(key, opaque);
  }
}

function toSecret(secret: Buffer | string): Buffer {
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
  if (bytes.length < 32) {
    throw new OpaqueIdError('ERR_ID_CONFIG', 'the opaque id secret must be at least 32 bytes');
  }
  return bytes;
}

/** The secret kept in the mapping's database, created once with 32 random bytes. */
function storedSecret(db: Database): Buffer {
  db.prepare('INSERT OR IGNORE INTO opaque_id_secret (one, secret) VALUES (1, ?)').run(
    randomBytes(32),
  );
  return db.prepare('SELECT secret FROM opaque_id_secret WHERE one = 1').pluck().get() as Buffer;
}

/**
 * Opens the id mapping stored at `opts.path` (created and migrated if needed).
 *
 * @example
 * ```ts
 * const ids = openOpaqueIds({ path: '.crdkit/ehr.db', baseUrl: 'https://127.0.0.1:8443/fhir' });
 * ```
 */
export function openOpaqueIds(opts: OpenOpaqueIdsOptions): OpaqueIds {
  const db = openSqlite(opts.path);
  try {
    return new OpaqueIds(db, {
      baseUrl: opts.baseUrl,
      ownsDb: true,
      ...(opts.secret !== undefined ? { secret: opts.secret } : {}),
    });
  } catch (err) {
    db.close();
    throw err;
  }
}
