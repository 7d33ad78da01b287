/**
 * Validation of a CDS Service response by the CRD client (CDS Hooks 2.0 cards and system
 * actions, CRD `CRDHooksResponseBase` resp-13, resp-3, resp-5, resp-25, hook-19). An invalid
 * card or system action is dropped whole with its reason, never half-kept; the others survive.
 * Unknown members are kept (found-33). Nothing here renders or applies anything.
 */
import { CARD_TYPES, CARD_TYPE_SYSTEM } from '../../crd/cards.js';
import { COVERAGE_INFORMATION_URL, CRD_TEMP_SYSTEM } from '../../crd/coverage-codes.js';
import { copyJson, isObject, NotJsonError } from './safe-json.js';
import type { Action, Card, Problem, SystemAction } from './types.js';

/** What {@link validateResponse} needs to know about the call. */
export interface AnswerRequest {
  hook: string;
  /** The orders (or Appointments) sent in the call's context. */
  orders: Array<{ resourceType: string; id: string }>;
  /** The `max-cards` value sent in `davinci-crd.configuration`, if any. */
  maxCards?: number;
}

export interface ValidatedResponse {
  cards: Card[];
  systemActions: SystemAction[];
  dropped: Problem[];
}

/** Thrown when the response as a whole is unusable (no `cards` array): a failed call. */
export class AnswerError extends Error {
  override name = 'AnswerError';
  readonly code = 'ERR_RESPONSE_SHAPE';
}

/** CDS Hooks: "<140-character summary". */
export const MAX_SUMMARY_CHARS = 139;
/** Longest `detail` kept (characters). */
export const MAX_DETAIL_CHARS = 32_768;
/** Longest label (source, link, suggestion) kept. */
export const MAX_LABEL_CHARS = 256;
/** Cards or system actions looked at; anything beyond is dropped unread. */
export const MAX_ENTRIES = 100;

const INDICATORS = new Set(['info', 'warning', 'critical']);
const ACTION_TYPES = new Set(['create', 'update', 'delete']);
const SELECTION = new Set(['at-most-one', 'any']);
const SECONDARY_HOOKS = new Set(['order-select', 'encounter-start', 'encounter-discharge']);
const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;
const FHIR_ID = /^(?!\.+$)[A-Za-z0-9\-._]{1,64}$/;
const REFERENCE =
  /^(?:.*\/)?([A-Z][A-Za-z]{1,63})\/((?!\.+(?:\/|$))[A-Za-z0-9\-._]{1,64})(?:\/_history\/[^/]+)?$/;
const CONTROL_OR_SPACE = /[\u0000-\u0020\u007f-\u009f\u2028\u2029]/;

/** A card or action refused for `reason` (fixed text, no response content). */
class Invalid extends Error {}
const fail = (reason: string): never => {
  throw new Invalid(reason);
};

/**
 * Validates a CDS Hooks response body (already parsed JSON). Returns deep copies of the valid
 * cards and system actions (prototype-polluting members removed) and the reasons for each drop.
 * Throws {@link AnswerError} when the body has no `cards` array.
 */
export function validateResponse(body: unknown, request: AnswerRequest): ValidatedResponse {
  if (!isObject(body) || !Array.isArray(body.cards)) {
    throw new AnswerError('the response has no "cards" array');
  }
  const orders = new Set(request.orders.map((o) => `${o.resourceType}/${o.id}`));
  const dropped: Problem[] = [];
  const cards: Card[] = [];
  const uuids = new Set<string>();
  const maxCards = request.maxCards ?? Infinity;

  body.cards.slice(0, MAX_ENTRIES).forEach((raw: unknown, i) => {
    const where = `cards[${i}]`;
    try {
      const card = checkCard(raw, orders);
      if (uuids.has(card.uuid)) fail('"uuid" repeats an earlier card');
      uuids.add(card.uuid);
      if (cards.length >= maxCards) fail('more cards than "max-cards" allows');
      cards.push(card);
    } catch (err) {
      dropped.push({ where, reason: reasonOf(err) });
    }
  });
  if (body.cards.length > MAX_ENTRIES) {
    const where = `cards[${MAX_ENTRIES}..${body.cards.length - 1}]`;
    dropped.push({ where, reason: 'more cards than are read' });
  }

  const systemActions: SystemAction[] = [];
  const rawActions = body.systemActions ?? [];
  if (!Array.isArray(rawActions)) {
    dropped.push({ where: 'systemActions', reason: '"systemActions" is not an array' });
  } else {
    rawActions.slice(0, MAX_ENTRIES).forEach((raw: unknown, i) => {
      const where = `systemActions[${i}]`;
      try {
        const action = checkAction(copy(raw), false);
        if (SECONDARY_HOOKS.has(request.hook)) checkSecondaryCoverageInfo(action);
        systemActions.push(action);
      } catch (err) {
        dropped.push({ where, reason: reasonOf(err) });
      }
    });
    if (rawActions.length > MAX_ENTRIES) {
      const where = `systemActions[${MAX_ENTRIES}..${rawActions.length - 1}]`;
      dropped.push({ where, reason: 'more actions than are read' });
    }
  }
  return { cards, systemActions, dropped };
}

function reasonOf(err: unknown): string {
  if (err instanceof Invalid) return err.message;
  if (err instanceof NotJsonError) return `not usable JSON: ${err.message}`;
  throw err;
}

function copy(raw: unknown): Record<string, unknown> {
  const value = copyJson(raw);
  return isObject(value) ? value : fail('is not an object');
}

function text(v: unknown, name: string, max: number): string {
  if (typeof v !== 'string' || v.trim() === '') return fail(`"${name}" is missing or empty`);
  // Counted in code points; the length check first spares spreading a huge string.
  if (v.length > 2 * max || [...v].length > max) return fail(`"${name}" is too long`);
  return v;
}

/** An absolute https URL without credentials, whitespace or control characters. */
export function isSafeHttpsUrl(v: unknown): v is string {
  if (typeof v !== 'string' || v.length > 4096 || CONTROL_OR_SPACE.test(v)) return false;
  if (!URL.canParse(v)) return false;
  const url = new URL(v);
  return url.protocol === 'https:' && url.hostname !== '' && !url.username && !url.password;
}

function checkCard(raw: unknown, orders: Set<string>): Card {
  const card = copy(raw);
  if (typeof card.uuid !== 'string' || card.uuid === '' || card.uuid.length > 128) {
    fail('"uuid" is missing or not a short string (resp-13)');
  }
  text(card.summary, 'summary', MAX_SUMMARY_CHARS);
  if (card.detail !== undefined) {
    if (typeof card.detail !== 'string') fail('"detail" is not a string');
    else if (card.detail.length > MAX_DETAIL_CHARS) fail('"detail" is too long');
  }
  if (typeof card.indicator !== 'string' || !INDICATORS.has(card.indicator)) {
    fail('"indicator" is not info, warning or critical');
  }
  checkSource(card.source);
  if (card.links !== undefined) {
    if (!Array.isArray(card.links)) fail('"links" is not an array');
    (card.links as unknown[]).forEach(checkLink);
  }
  if (card.suggestions !== undefined) {
    if (!Array.isArray(card.suggestions)) fail('"suggestions" is not an array');
    const suggestions = card.suggestions as unknown[];
    if (suggestions.length > 0 && !SELECTION.has(card.selectionBehavior as string)) {
      fail('"selectionBehavior" must be at-most-one or any when there are suggestions');
    }
    suggestions.forEach(checkSuggestion);
  }
  if (card.overrideReasons !== undefined) {
    if (!Array.isArray(card.overrideReasons) || !card.overrideReasons.every(isCoding)) {
      fail('"overrideReasons" is not an array of codings');
    }
  }
  if (card.extension !== undefined) {
    if (!isObject(card.extension)) fail('"extension" is not an object');
    checkAssociated(
      (card.extension as Record<string, unknown>)['davinci-crd.associated-resource'],
      orders,
    );
  }
  return card as Card;
}

function isCoding(v: unknown): boolean {
  return (
    isObject(v) &&
    typeof v.code === 'string' &&
    v.code !== '' &&
    (v.system === undefined || typeof v.system === 'string') &&
    (v.display === undefined || typeof v.display === 'string')
  );
}

function checkSource(source: unknown): void {
  if (!isObject(source)) return fail('"source" is missing');
  text(source.label, 'source.label', MAX_LABEL_CHARS);
  if (source.url !== undefined && !isSafeHttpsUrl(source.url)) {
    fail('"source.url" is not an absolute https URL');
  }
  if (source.icon !== undefined && !isSafeHttpsUrl(source.icon)) {
    fail('"source.icon" is not an absolute https URL');
  }
  const topic = source.topic;
  // resp-5: a topic is required; its binding to ValueSet/cardType is extensible, so codings
  // from other systems are kept, but a code claimed from the card-type system must exist in it.
  if (!isObject(topic) || typeof topic.system !== 'string' || topic.system === '') {
    return fail('"source.topic" is missing or has no "system" (resp-5)');
  }
  if (typeof topic.code !== 'string' || topic.code === '') fail('"source.topic.code" is missing');
  const cardTypeSystem = topic.system === CARD_TYPE_SYSTEM || topic.system === CRD_TEMP_SYSTEM;
  if (cardTypeSystem && !Object.hasOwn(CARD_TYPES, topic.code as string)) {
    fail('"source.topic.code" is not a cdshooks-card-type code');
  }
  if (topic.display !== undefined && typeof topic.display !== 'string') {
    fail('"source.topic.display" is not a string');
  }
}

function checkLink(link: unknown): void {
  if (!isObject(link)) return fail('a link is not an object');
  text(link.label, 'links.label', MAX_LABEL_CHARS);
  // Also refuses javascript:, data:, http: and relative URLs.
  if (!isSafeHttpsUrl(link.url)) fail('"links.url" is not an absolute https URL');
  if (link.type !== 'absolute' && link.type !== 'smart')
    fail('"links.type" is not absolute or smart');
  if (link.appContext !== undefined) {
    if (link.type !== 'smart') fail('"links.appContext" is only allowed on smart links');
    if (typeof link.appContext !== 'string') fail('"links.appContext" is not a string');
  }
}

function checkSuggestion(s: unknown): void {
  if (!isObject(s)) return fail('a suggestion is not an object');
  text(s.label, 'suggestions.label', MAX_LABEL_CHARS);
  if (typeof s.uuid !== 'string' || s.uuid === '') fail('"suggestions.uuid" is missing (resp-3)');
  if (s.isRecommended !== undefined && typeof s.isRecommended !== 'boolean') {
    fail('"suggestions.isRecommended" is not a boolean');
  }
  if (!Array.isArray(s.actions) || s.actions.length === 0) fail('"suggestions.actions" is empty');
  for (const a of s.actions as unknown[]) {
    const action = checkAction(a, true);
    // resp-25: coverage information is only ever a system action, never offered on a card.
    if (carriesCoverageInformation(action.resource)) {
      fail('a suggestion carries coverage information (resp-25)');
    }
  }
}

/** Checks one action; `suggestion` actions need a `description`. */
function checkAction(a: unknown, suggestion: boolean): Action {
  if (!isObject(a)) return fail('an action is not an object');
  if (typeof a.type !== 'string' || !ACTION_TYPES.has(a.type)) {
    fail('"type" of an action is not create, update or delete');
  }
  if (suggestion || a.description !== undefined) {
    if (typeof a.description !== 'string' || (suggestion && a.description.trim() === '')) {
      fail('"description" of an action is missing or not a string');
    }
  }
  if (a.type === 'delete') {
    const ids = Array.isArray(a.resourceId) ? a.resourceId : [a.resourceId];
    if (ids.length === 0 || !ids.every((id) => typeof id === 'string' && referenceKey(id))) {
      fail('"resourceId" of a delete action is missing or not Type/id');
    }
  } else {
    const r = a.resource;
    if (!isObject(r) || typeof r.resourceType !== 'string' || !RESOURCE_TYPE.test(r.resourceType)) {
      fail(`"resource" of a ${a.type as string} action is missing or has no "resourceType"`);
    }
    const id = (r as Record<string, unknown>).id;
    if (a.type === 'update' && (typeof id !== 'string' || !FHIR_ID.test(id))) {
      fail('"resource.id" of an update action is missing or not a FHIR id');
    }
    if (id !== undefined && (typeof id !== 'string' || !FHIR_ID.test(id))) {
      fail('"resource.id" of an action is not a FHIR id');
    }
  }
  return a as Action;
}

/** dev-25: associated resources must name orders of this request. */
function checkAssociated(v: unknown, orders: Set<string>): void {
  if (v === undefined) return;
  if (!Array.isArray(v) || v.length === 0) {
    return fail('"davinci-crd.associated-resource" is not a non-empty array');
  }
  for (const ref of v) {
    const key =
      isObject(ref) && typeof ref.reference === 'string' ? referenceKey(ref.reference) : '';
    if (!key) fail('"davinci-crd.associated-resource" holds an entry that is not a reference');
    else if (!orders.has(key)) {
      fail('"davinci-crd.associated-resource" names a resource that is not in the request');
    }
  }
}

/** True when `resource` has a top-level ext-coverage-information extension. */
export function carriesCoverageInformation(resource: unknown): boolean {
  if (!isObject(resource) || !Array.isArray(resource.extension)) return false;
  return resource.extension.some((e) => isObject(e) && e.url === COVERAGE_INFORMATION_URL);
}

/** hook-19: on secondary hooks, coverage information never asks for clinical or admin documents. */
function checkSecondaryCoverageInfo(action: Action): void {
  const resource = action.resource as { extension?: unknown } | undefined;
  const exts = Array.isArray(resource?.extension) ? (resource.extension as unknown[]) : [];
  for (const e of exts) {
    if (!isObject(e) || e.url !== COVERAGE_INFORMATION_URL || !Array.isArray(e.extension)) continue;
    for (const part of e.extension as unknown[]) {
      if (
        isObject(part) &&
        part.url === 'doc-needed' &&
        (part.valueCode === 'clinical' || part.valueCode === 'admin')
      ) {
        fail('"doc-needed" clinical or admin is not allowed on a secondary hook (hook-19)');
      }
    }
  }
}

/** The `Type/id` named by a reference (relative, absolute or versioned), if any. */
export function referenceKey(reference: string): string | undefined {
  if (reference.length > 4096) return undefined;
  const m = REFERENCE.exec(reference);
  return m ? `${m[1]}/${m[2]}` : undefined;
}
