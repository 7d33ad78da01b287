/**
 * Launching a SMART app from a card's `smart` link (sec-4): the app must be a registered
 * confidential client allowed to be launched (its redirect URI shares the link's origin), the
 * EHR records a single-use `launch` value with the patient, the encounter and the card's
 * `appContext`, and the app is opened at the link with `iss` and `launch` (SMART App Launch 2.2
 * EHR launch). Anything else is refused: an unknown app is never given patient context.
 */
import { CdsError } from '../cds/outcome.js';
import type { EhrAuthorizationServer, EhrClient } from './authz/index.js';

export interface SmartLink {
  url: string;
  type: string;
  appContext?: string;
}

/** The registered, launchable confidential client whose redirect URIs share the link's origin. */
export function clientForLink(
  link: SmartLink,
  clients: readonly EhrClient[],
): EhrClient | undefined {
  if (link.type !== 'smart' || !URL.canParse(link.url)) return undefined;
  const origin = new URL(link.url).origin;
  return clients.find(
    (c) =>
      c.launchable === true &&
      c.kind !== 'public' &&
      (c.redirectUris ?? []).some((u) => URL.canParse(u) && new URL(u).origin === origin),
  );
}

/**
 * The URL to open for a card's SMART link: `link.url` with `iss` (the FHIR base URL) and a fresh
 * `launch` value bound to that app, this patient and encounter, and the card's `appContext`.
 * Throws a 403 `CdsError` (`ERR_LAUNCH_NOT_ALLOWED`) for an app that may not be launched.
 */
export async function launchFromCard(
  authz: EhrAuthorizationServer,
  clients: readonly EhrClient[],
  fhirBaseUrl: string,
  link: SmartLink,
  context: { patient: string; encounter?: string; user?: string },
): Promise<{ url: string; clientId: string }> {
  const client = clientForLink(link, clients);
  if (!client) {
    throw new CdsError(
      403,
      'ERR_LAUNCH_NOT_ALLOWED',
      'the link does not name a registered confidential app that may be launched (sec-4)',
      'forbidden',
    );
  }
  const launch = await authz.createLaunch({
    clientId: client.clientId,
    patient: context.patient,
    ...(context.encounter ? { encounter: context.encounter } : {}),
    ...(context.user ? { user: context.user } : {}),
    ...(link.appContext !== undefined ? { appContext: link.appContext } : {}),
  });
  const url = new URL(link.url);
  url.searchParams.set('iss', fhirBaseUrl);
  url.searchParams.set('launch', launch);
  return { url: url.href, clientId: client.clientId };
}
