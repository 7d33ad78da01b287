/** The discovery document (`GET /cds-services`). */
import { HOOKS } from './hooks.js';
import type { HookName } from './types.js';
import { configurationOptions, SUPPORTED_VERSIONS } from './configuration.js';

/**
 * Builds the discovery response once; it does not change while the server runs. `cardTypes`
 * gives each hook's card types (the hook's own plus those of the payer's rules).
 */
export function discoveryDocument(
  payerName: string,
  cardTypes: (hook: HookName) => readonly string[],
): { services: unknown[] } {
  return {
    services: Object.values(HOOKS).map((h) => ({
      hook: h.hook,
      id: h.id,
      title: h.title,
      description: `${h.description} (${payerName})`,
      prefetch: h.prefetch,
      extension: {
        'davinci-crd.version': [...SUPPORTED_VERSIONS],
        'davinci-crd.configuration-options': configurationOptions(h, cardTypes(h.hook)),
      },
    })),
  };
}
