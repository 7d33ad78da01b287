/**
 * Writes exported AuditEvents as NDJSON (one resource a line) or as a FHIR `collection` Bundle.
 * Both stream: nothing is held in memory beyond one event.
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import { once } from 'node:events';
import type { Writable } from 'node:stream';

async function write(out: Writable, text: string): Promise<void> {
  if (!out.write(text)) await once(out, 'drain');
}

/**
 * Writes `events` to `out` as NDJSON; returns how many were written.
 *
 * @example
 * ```ts
 * await writeNdjson(audit.export({ patient: 'Patient/123' }), process.stdout);
 * ```
 */
export async function writeNdjson(
  events: AsyncIterable<AuditEvent>,
  out: Writable,
): Promise<number> {
  let count = 0;
  for await (const event of events) {
    await write(out, `${JSON.stringify(event)}\n`);
    count += 1;
  }
  return count;
}

/**
 * Writes `events` to `out` as one FHIR R4 Bundle of type `collection`; returns how many.
 *
 * @example
 * ```ts
 * await writeBundle(audit.export({ since: new Date('2025-01-01') }), createWriteStream(file));
 * ```
 */
export async function writeBundle(
  events: AsyncIterable<AuditEvent>,
  out: Writable,
  now: Date = new Date(),
): Promise<number> {
  let count = 0;
  await write(
    out,
    `{"resourceType":"Bundle","type":"collection","timestamp":"${now.toISOString()}","entry":[`,
  );
  for await (const event of events) {
    const fullUrl = `urn:uuid:${event.id}`;
    await write(out, `${count ? ',' : ''}\n${JSON.stringify({ fullUrl, resource: event })}`);
    count += 1;
  }
  await write(out, '\n]}\n');
  return count;
}
