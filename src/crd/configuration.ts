/**
 * CRD configuration options (dev-4 to dev-17) and versions (dev-1 to dev-3): what discovery
 * advertises, and how a request's `davinci-crd.configuration` is read.
 */
import { CdsError } from '../cds/outcome.js';
import type { HookDefinition } from './hooks.js';

/** CRD versions this server implements; each matches crdver-1 (`^[1-9]\d*\.[1-9]\d*$`). */
export const SUPPORTED_VERSIONS = ['2.2'] as const;

export const DEFAULT_MAX_CARDS = 10;

export interface ConfigurationOption {
  code: string;
  type: 'boolean' | 'integer';
  name: string;
  description: string;
  default: boolean | number;
}

const CARD_TYPE_NAMES: Record<string, [string, string]> = {
  'coverage-info': [
    'Coverage Information',
    'Coverage, prior authorization and documentation requirements',
  ],
  'clinical-reminder': ['Clinical Reminders', 'Reminders about documentation and next steps'],
  guideline: ['Guidelines', 'Links to the payer policy or guideline that applies'],
  network: ['Network', 'Provider network requirements and alternatives'],
  insurance: ['Insurance Updates', "Updates to the patient's coverage records"],
  limits: ['Limits', 'Quantity, frequency and duration limits'],
  'appropriate-use': ['Appropriate Use', 'Appropriate use criteria that apply'],
  cost: ['Cost', 'Expected patient cost'],
  claim: ['Claim', 'Information for the claim'],
  'therapy-alternatives-opt': ['Optional Alternatives', 'Alternative therapies to consider'],
  'therapy-alternatives-req': ['Required Alternatives', 'Alternatives the plan requires first'],
  'duplicate-therapy': ['Duplicate Therapy', 'Possible duplicate therapy'],
  contraindication: ['Contraindications', 'Possible contraindications'],
  'off-guideline': ['Off Guideline', 'Orders outside the payer guideline'],
};

/**
 * The options a service advertises: one boolean per card type it can return (dev-5) plus
 * `max-cards`. `cardTypes` defaults to the hook's own.
 */
export function configurationOptions(
  hook: HookDefinition,
  cardTypes: readonly string[] = hook.cardTypes,
): ConfigurationOption[] {
  const options: ConfigurationOption[] = cardTypes.map((code) => {
    const [name, description] = CARD_TYPE_NAMES[code] ?? [code, `Cards of type ${code}`];
    return { code, type: 'boolean', name, description, default: true };
  });
  options.push({
    code: 'max-cards',
    type: 'integer',
    name: 'Maximum Cards',
    description: 'The largest number of cards returned in one response',
    default: DEFAULT_MAX_CARDS,
  });
  return options;
}

/** Options by code, built once per (hook, card-type list) rather than once per call. */
const OPTIONS_BY_CODE = new WeakMap<readonly string[], Map<string, ConfigurationOption>>();
function optionsByCode(
  hook: HookDefinition,
  cardTypes: readonly string[],
): Map<string, ConfigurationOption> {
  let options = OPTIONS_BY_CODE.get(cardTypes);
  if (!options) {
    options = new Map(configurationOptions(hook, cardTypes).map((o) => [o.code, o]));
    OPTIONS_BY_CODE.set(cardTypes, options);
  }
  return options;
}

/** The settings in force for one call. */
export interface CallConfiguration {
  enabled(cardType: string): boolean;
  maxCards: number;
}

/**
 * Reads `davinci-crd.configuration`: supported keys are obeyed (dev-14), unknown keys ignored
 * (dev-17), nothing is required (dev-15). A supported key with the wrong JSON type is a 400.
 */
export function readConfiguration(
  hook: HookDefinition,
  raw: unknown,
  cardTypes: readonly string[] = hook.cardTypes,
): CallConfiguration {
  const options = optionsByCode(hook, cardTypes);
  const values = new Map<string, boolean | number>();
  if (raw !== undefined) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new CdsError(
        400,
        'ERR_CONFIGURATION',
        '"davinci-crd.configuration" must be an object',
        'structure',
        'extension.davinci-crd.configuration',
      );
    }
    for (const [code, value] of Object.entries(raw)) {
      const option = options.get(code);
      if (!option) continue;
      const ok =
        option.type === 'boolean'
          ? typeof value === 'boolean'
          : Number.isInteger(value) && (value as number) >= 0;
      if (!ok) {
        throw new CdsError(
          400,
          'ERR_CONFIGURATION',
          `"${code}" in "davinci-crd.configuration" must be ${
            option.type === 'boolean' ? 'a boolean' : 'a non-negative integer'
          }`,
          'value',
          `extension.davinci-crd.configuration.${code}`,
        );
      }
      values.set(code, value as boolean | number);
    }
  }
  return {
    // dev-6: a nonsensical combination (everything off) simply yields an empty response.
    enabled: (cardType) => values.get(cardType) !== false,
    maxCards: (values.get('max-cards') as number | undefined) ?? DEFAULT_MAX_CARDS,
  };
}

/** Checks `davinci-crd.requestedVersion` (dev-3); an unsupported version is an error (422). */
export function checkRequestedVersion(raw: unknown): string {
  if (raw === undefined) return SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.length - 1]!;
  if (typeof raw !== 'string') {
    throw new CdsError(
      400,
      'ERR_VERSION',
      '"davinci-crd.requestedVersion" must be a string',
      'value',
      'extension.davinci-crd.requestedVersion',
    );
  }
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(raw)) {
    throw new CdsError(
      422,
      'ERR_VERSION_UNSUPPORTED',
      `"davinci-crd.requestedVersion" ${JSON.stringify(raw.slice(0, 16))} is not supported; ` +
        `supported: ${SUPPORTED_VERSIONS.join(', ')}`,
      'not-supported',
      'extension.davinci-crd.requestedVersion',
    );
  }
  return raw;
}
