/**
 * CDS Hooks cards from the rules' card templates: Instructions (resp-24) and External Reference
 * (resp-22) cards with a uuid, a `cdshooks-card-type` topic and the payer as source.
 */
import { randomUUID } from 'node:crypto';
import type { CardTemplate } from './types.js';

/** `source.topic.system` for every card (resp-5). */
export const CARD_TYPE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/cdshooks-card-type';

/** The `cdshooks-card-type` codes (`ValueSet/cardType`) with their displays. */
export const CARD_TYPES: Readonly<Record<string, string>> = {
  'coverage-info': 'Coverage Information',
  'unsolicited-determ': 'Unsolicited Determination',
  claim: 'Claim',
  insurance: 'Insurance',
  limits: 'Limits',
  network: 'Network',
  'appropriate-use': 'Appropriate Use',
  cost: 'Cost',
  'therapy-alternatives-opt': 'Optional Therapy Alternatives',
  'therapy-alternatives-req': 'Required Therapy Alternatives',
  'clinical-reminder': 'Clinical Reminder',
  'duplicate-therapy': 'Duplicate Therapy',
  contraindication: 'Contraindication',
  guideline: 'Guideline',
  'off-guideline': 'Off Guideline',
};

/** Longest summary emitted: resp-6 says "under 140 characters". */
export const MAX_SUMMARY = 139;

/** A CDS Hooks card as crdkit emits it (CRDHooksResponseBase, resp-13). */
export interface Card {
  uuid: string;
  summary: string;
  detail?: string;
  indicator: 'info' | 'warning' | 'critical';
  source: { label: string; topic: { system: string; code: string; display?: string } };
  links?: Array<{ label: string; url: string; type: 'absolute' }>;
  extension?: { 'davinci-crd.associated-resource': Array<{ reference: string }> };
}

/** A template plus the orders (`ServiceRequest/1357`) it was produced for. */
export type CardInput = CardTemplate & { orders?: string[] };

/** How {@link buildCards} shapes the response. */
export interface BuildCardsOptions {
  /** The insurer name the patient recognises (resp-4). */
  payerName: string;
  /** False for card types the client's configuration turned off (dev-5, dev-14). */
  enabled: (topic: string) => boolean;
  /** The `max-cards` configuration value. */
  maxCards: number;
  /**
   * Names an order in human terms for dev-24, e.g. "the order for portable oxygen".
   * Default: "service request 1357". Must not return more than the EHR already shows.
   */
  describeOrder?: (reference: string) => string;
}

const RANK = { critical: 0, warning: 1, info: 2 } as const;

/**
 * Builds the cards: merges identical templates produced for several orders into one card that
 * names the orders (dev-24) and lists them in `davinci-crd.associated-resource` (dev-25), drops
 * disabled topics, sorts critical > warning > info (stable) and keeps at most `maxCards`.
 */
export function buildCards(templates: CardInput[], opts: BuildCardsOptions): Card[] {
  const merged = new Map<string, { t: CardTemplate; orders: string[] }>();
  for (const { orders, ...t } of templates) {
    if (!opts.enabled(t.topic)) continue;
    const links = t.links?.map((l) => `${l.label}\u0001${l.url}`).join('\u0002') ?? '';
    const key = [t.kind, t.summary, t.detail ?? '', t.indicator ?? 'info', t.topic, links].join(
      '\u0000',
    );
    const entry = merged.get(key) ?? { t, orders: [] };
    for (const o of orders ?? []) if (!entry.orders.includes(o)) entry.orders.push(o);
    merged.set(key, entry);
  }
  const cards = [...merged.values()].map(({ t, orders }) => card(t, orders, opts));
  cards.sort((a, b) => RANK[a.indicator] - RANK[b.indicator]);
  const max = Number.isFinite(opts.maxCards) ? Math.max(0, Math.floor(opts.maxCards)) : 0;
  return cards.slice(0, max);
}

function card(t: CardTemplate, orders: string[], opts: BuildCardsOptions): Card {
  const links = t.kind === 'external-reference' ? (t.links ?? []) : [];
  const parts: string[] = [];
  // Instructions cards need a detail (resp-24); External Reference cards SHOULD summarise
  // their target (resp-20) and repeat the links in the markdown (resp-10).
  const base =
    t.detail ?? (links.length > 0 ? `See ${joinHuman(links.map((l) => l.label))}.` : t.summary);
  parts.push(base);
  if (links.length > 0) parts.push(links.map((l) => `- [${md(l.label)}](${l.url})`).join('\n'));
  if (orders.length > 0) {
    const describe = opts.describeOrder ?? describeReference;
    parts.push(`Applies to ${joinHuman(orders.map(describe))}.`);
  }
  const out: Card = {
    uuid: randomUUID(),
    summary: truncate(t.summary),
    detail: parts.join('\n\n'),
    indicator: t.indicator ?? 'info',
    source: {
      label: opts.payerName,
      topic: { system: CARD_TYPE_SYSTEM, code: t.topic, display: CARD_TYPES[t.topic] },
    },
  };
  if (out.source.topic.display === undefined) delete out.source.topic.display;
  if (links.length > 0) {
    out.links = links.map((l) => ({ label: l.label, url: l.url, type: 'absolute' as const }));
  }
  if (orders.length > 0) {
    out.extension = {
      'davinci-crd.associated-resource': orders.map((reference) => ({ reference })),
    };
  }
  return out;
}

/** resp-6: cut to {@link MAX_SUMMARY} characters with an ellipsis. */
export function truncate(summary: string): string {
  // UTF-16 length bounds the code-point count: short summaries need no splitting.
  if (summary.length <= MAX_SUMMARY) return summary;
  const chars = [...summary];
  return chars.length <= MAX_SUMMARY ? summary : `${chars.slice(0, MAX_SUMMARY - 1).join('')}…`;
}

/** `ServiceRequest/1357` → `service request 1357` (type in words, then the id). */
export function describeReference(reference: string): string {
  const segments = reference.split('/');
  const id = segments.pop() ?? reference;
  const type = segments.pop();
  if (type === undefined) return reference;
  return `${type.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase()} ${id}`;
}

function joinHuman(items: string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1] ?? ''}`;
}

function md(text: string): string {
  return text.replace(/[[\]]/g, '\\$&');
}
