/** The discovery document (`GET /cds-services`). */
import { HOOKS } from './hooks.js';
import { configurationOptions, SUPPORTED_VERSIONS } from './configuration.js';

/** Builds the discovery response once; it does not change while the server runs. */
export function discoveryDocument(payerName: string): { services: unknown[] } {
  return {
    services: Object.values(HOOKS).map((h) => ({
      hook: h.hook,
      id: h.id,
      title: h.title,
      description: `${h.description} (${payerName})`,
      prefetch: h.prefetch,
      extension: {
        'davinci-crd.version': [...SUPPORTED_VERSIONS],
        'davinci-crd.configuration-options': configurationOptions(h),
      },
    })),
  };
}
