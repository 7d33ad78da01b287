/**
 * The EHR's FHIR resources in SQLite: one row per resource (current version), every version in
 * `resource_history`, and the index of the search parameters the FHIR API offers. Internal ids
 * are random UUIDs, never derived from a business identifier (sec-7).
 */
import type BetterSqlite3 from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import type { Resource } from '@medplum/fhirtypes';
import { migrate, openSqlite, type Database } from '../../store/sqlite.js';
import { exposesIdentifier } from '../ids/guard.js';
import { FHIR_ID } from '../ids/references.js';
import { patientOf } from './compartment.js';
import { StoreError } from './errors.js';
import { indexEntries } from './search-params.js';

const MIGRATIONS = [
  `CREATE TABLE resources (
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    last_updated TEXT NOT NULL,
    patient TEXT,
    json TEXT NOT NULL,
    PRIMARY KEY (type, id)
  ) WITHOUT ROWID;
  CREATE INDEX resources_patient ON resources (patient, type);
  CREATE TABLE resource_history (
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    last_updated TEXT NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (type, id, version)
  ) WITHOUT ROWID;
  CREATE TABLE resource_index (
    type TEXT NOT NULL,
    param TEXT NOT NULL,
    value TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (type, param, value, id)
  ) WITHOUT ROWID;
  CREATE INDEX resource_index_by_resource ON resource_index (type, id);`,
];

const TYPE = /^[A-Z][A-Za-z]{1,63}$/;

/** One search condition: the resource matches one of `values` (OR); conditions are ANDed. */
export interface SearchCriterion {
  /** `_id` or an indexed parameter (`patient`, `status`, `identifier`…). */
  name: string;
  /** Ids for `_id`, `Type/id` for references, `code` or `system|code` for tokens. */
  values: string[];
}

export interface SearchOptions {
  /** Only resources of this patient (internal id) or of none. */
  patient?: string;
  /** At most this many resources (default 1000). */
  limit?: number;
}

/** The resource store (synchronous: one SQLite connection in this process). */
export interface ResourceStore {
  /** The current version of `type/id`, or undefined. */
  read<T extends Resource = Resource>(type: string, id: string): T | undefined;
  /** Resources of `type` matching every criterion, ordered by id. */
  search<T extends Resource = Resource>(
    type: string,
    criteria?: SearchCriterion[],
    opts?: SearchOptions,
  ): T[];
  /** Stores a new resource under a fresh random id (any id given is ignored); version 1. */
  create<T extends Resource>(resource: T): T;
  /**
   * Replaces `resource.id`'s current version (it must exist); `ifMatch` is the version the
   * caller last saw (`If-Match`), refused with 412 when it is no longer current.
   */
  update<T extends Resource>(resource: T, opts?: { ifMatch?: string }): T;
  /**
   * Writes resources with the ids they carry, creating or replacing each, all or none. For the
   * Bundle loader: ids must be fresh random ones, like those `create` assigns.
   */
  putAll(resources: Resource[]): Resource[];
  /** The patient (internal id) `type/id` belongs to, as indexed. */
  patientOf(type: string, id: string): string | undefined;
  close(): void;
}

export interface OpenResourceStoreOptions {
  /** The SQLite file (created with mode 0600) or `:memory:`. */
  path: string;
  /** The clock of `meta.lastUpdated` (tests freeze it). */
  now?: () => Date;
}

type Row = { json: string };

function checkResource(resource: Resource): void {
  if (typeof resource !== 'object' || resource === null || !TYPE.test(resource.resourceType)) {
    throw new StoreError('ERR_STORE_INVALID', '"resourceType" is missing or invalid');
  }
  if (resource.resourceType === 'Bundle') {
    throw new StoreError('ERR_STORE_INVALID', 'a Bundle is loaded with loadBundle, not stored');
  }
}

/** A random id unrelated to the resource's identifiers (sec-7; see `exposesIdentifier`). */
export function freshId(resource: Resource): string {
  for (;;) {
    const id = randomUUID();
    if (!exposesIdentifier(resource, [id])) return id;
  }
}

class SqliteResourceStore implements ResourceStore {
  readonly #db: Database;
  readonly #now: () => Date;
  readonly #get;
  readonly #upsert;
  readonly #history;
  readonly #unindex;
  readonly #index;
  readonly #patient;

  constructor(db: Database, now: () => Date) {
    this.#db = db;
    this.#now = now;
    migrate(db, 'ehr-resources', MIGRATIONS);
    this.#get = db.prepare<[string, string], { version: number; json: string }>(
      'SELECT version, json FROM resources WHERE type = ? AND id = ?',
    );
    this.#upsert = db.prepare(
      `INSERT INTO resources (type, id, version, last_updated, patient, json)
       VALUES (@type, @id, @version, @lastUpdated, @patient, @json)
       ON CONFLICT (type, id) DO UPDATE SET version = excluded.version,
         last_updated = excluded.last_updated, patient = excluded.patient, json = excluded.json`,
    );
    this.#history = db.prepare(
      `INSERT INTO resource_history (type, id, version, last_updated, json)
       VALUES (@type, @id, @version, @lastUpdated, @json)`,
    );
    this.#unindex = db.prepare('DELETE FROM resource_index WHERE type = ? AND id = ?');
    this.#index = db.prepare(
      'INSERT OR IGNORE INTO resource_index (type, param, value, id) VALUES (?, ?, ?, ?)',
    );
    this.#patient = db.prepare<[string, string], { patient: string | null }>(
      'SELECT patient FROM resources WHERE type = ? AND id = ?',
    );
  }

  read<T extends Resource = Resource>(type: string, id: string): T | undefined {
    if (!TYPE.test(type) || !FHIR_ID.test(id)) return undefined;
    const row = this.#get.get(type, id);
    return row ? (JSON.parse(row.json) as T) : undefined;
  }

  search<T extends Resource = Resource>(
    type: string,
    criteria: SearchCriterion[] = [],
    opts: SearchOptions = {},
  ): T[] {
    if (!TYPE.test(type)) return [];
    const where = ['r.type = ?'];
    const args: unknown[] = [type];
    for (const c of criteria) {
      if (c.values.length === 0) return [];
      const marks = c.values.map(() => '?').join(', ');
      if (c.name === '_id') {
        where.push(`r.id IN (${marks})`);
      } else {
        where.push(
          `EXISTS (SELECT 1 FROM resource_index i WHERE i.type = r.type AND i.id = r.id
             AND i.param = ? AND i.value IN (${marks}))`,
        );
        args.push(c.name);
      }
      args.push(...c.values);
    }
    if (opts.patient !== undefined) {
      where.push('(r.patient = ? OR r.patient IS NULL)');
      args.push(opts.patient);
    }
    args.push(opts.limit ?? 1000);
    const sql = `SELECT r.json FROM resources r WHERE ${where.join(' AND ')} ORDER BY r.id LIMIT ?`;
    return (this.#statement(sql).all(...args) as Row[]).map((r) => JSON.parse(r.json) as T);
  }

  /** Search statements by their SQL (a search's shape repeats: prepared once, up to 256 kept). */
  readonly #searches = new Map<string, BetterSqlite3.Statement<unknown[]>>();
  #statement(sql: string): BetterSqlite3.Statement<unknown[]> {
    let statement = this.#searches.get(sql);
    if (!statement) {
      if (this.#searches.size >= 256) this.#searches.delete(this.#searches.keys().next().value!);
      statement = this.#db.prepare(sql);
      this.#searches.set(sql, statement);
    }
    return statement;
  }

  create<T extends Resource>(resource: T): T {
    checkResource(resource);
    const stored = { ...resource, id: freshId(resource) };
    return this.#db.transaction(() => this.#write(stored, 1))();
  }

  update<T extends Resource>(resource: T, opts: { ifMatch?: string } = {}): T {
    checkResource(resource);
    if (typeof resource.id !== 'string' || !FHIR_ID.test(resource.id)) {
      throw new StoreError('ERR_STORE_INVALID', '"id" is missing or invalid', 'id');
    }
    return this.#db.transaction(() => {
      const current = this.#get.get(resource.resourceType, resource.id!);
      if (!current) throw new StoreError('ERR_STORE_NOT_FOUND');
      if (opts.ifMatch !== undefined && opts.ifMatch !== String(current.version)) {
        throw new StoreError('ERR_STORE_VERSION');
      }
      return this.#write(resource, current.version + 1);
    })();
  }

  putAll(resources: Resource[]): Resource[] {
    resources.forEach(checkResource);
    for (const r of resources) {
      if (typeof r.id !== 'string' || !FHIR_ID.test(r.id)) {
        throw new StoreError('ERR_STORE_INVALID', '"id" is missing or invalid', 'id');
      }
    }
    return this.#db.transaction(() =>
      resources.map((r) => {
        const current = this.#get.get(r.resourceType, r.id!);
        return this.#write(r, (current?.version ?? 0) + 1);
      }),
    )();
  }

  patientOf(type: string, id: string): string | undefined {
    return this.#patient.get(type, id)?.patient ?? undefined;
  }

  close(): void {
    this.#db.close();
  }

  #write<T extends Resource>(resource: T, version: number): T {
    const lastUpdated = this.#now().toISOString();
    const stored = {
      ...resource,
      meta: { ...resource.meta, versionId: String(version), lastUpdated },
    } as T;
    const json = JSON.stringify(stored);
    const row = {
      type: stored.resourceType,
      id: stored.id!,
      version,
      lastUpdated,
      patient: patientOf(stored) ?? null,
      json,
    };
    this.#upsert.run(row);
    this.#history.run(row);
    this.#unindex.run(row.type, row.id);
    for (const [param, value] of indexEntries(stored)) {
      this.#index.run(row.type, param, value, row.id);
    }
    return stored;
  }
}

/**
 * Opens the resource store at `opts.path`, creating and migrating its tables.
 *
 * @example
 * ```ts
 * const store = openResourceStore({ path: '.crdkit/ehr.db' });
 * const patient = store.create({ resourceType: 'Patient', name: [{ family: 'Example' }] });
 * store.search('Coverage', [{ name: 'patient', values: [`Patient/${patient.id}`] }]);
 * ```
 */
export function openResourceStore(opts: OpenResourceStoreOptions): ResourceStore {
  const db = openSqlite(opts.path);
  try {
    return new SqliteResourceStore(db, opts.now ?? (() => new Date()));
  } catch (err) {
    db.close();
    throw err;
  }
}
