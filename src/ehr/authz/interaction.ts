/**
 * The sign-in and approval step of the authorization code flow, at `B/oauth/interaction/<uid>`:
 * a demo EHR user is chosen from the configured list and approves the request in one form POST
 * (fields `user`, and `decision=deny` to refuse). The step needs no browser: a client that keeps
 * cookies can drive it. The form is protected from cross-site posts by oidc-provider's
 * interaction cookie (SameSite=Lax, signed, bound to this interaction).
 *
 * Approval creates a fresh grant holding the scopes the client may have (requested ∩
 * registered, SMART rules), redeems the `launch` value of an EHR launch (once, for the client it
 * was created for, by the user who launched when one was named) and binds its context to the
 * grant. A grant is never reused across authorizations, so each launch gets its own context.
 *
 * TODO(crdkit 0.x): the demo sign-in takes a user id without a password because crdkit has no
 * user directory; a deployment signs users in through the EHR's own identity provider.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import { scopePolicy } from './clients.js';
import { UNKNOWN_CLIENT, type TokenEvents } from './events.js';
import { escapeHtml, readForm, sendHtml, sendOAuthError } from './http.js';
import type { Launches } from './launch.js';
import { OIDC_SCOPES, permittedScopes, splitScopes } from './scopes.js';
import type { EhrClient, EhrUser } from './types.js';

type Interaction = Awaited<ReturnType<Provider['interactionDetails']>>;

/** What the step needs. */
export interface InteractionDeps {
  provider: Provider;
  clients: ReadonlyMap<string, EhrClient>;
  users: ReadonlyMap<string, EhrUser>;
  launches: Launches;
  events: TokenEvents;
  /** The FHIR base URL: the resource the grant's scopes are for. */
  fhirUrl: string;
  /** Lifetime of a grant (and of its launch context), seconds. */
  grantTtl: number;
}

const text = (value: unknown): string | undefined =>
  typeof value === 'string' && value ? value : undefined;

function renderForm(res: ServerResponse, interaction: Interaction, deps: InteractionDeps): void {
  const clientId = text(interaction.params.client_id) ?? '';
  const client = deps.clients.get(clientId);
  const who = escapeHtml(client?.name ?? clientId);
  const scopes = splitScopes(text(interaction.params.scope))
    .map((s) => `<li>${escapeHtml(s)}</li>`)
    .join('');
  const login = interaction.prompt.name === 'login';
  const options = [...deps.users.values()]
    .map((u) => `<option value="${escapeHtml(u.id)}">${escapeHtml(u.name)}</option>`)
    .join('');
  const userField = login
    ? `<label>User <select name="user">${options}</select></label>`
    : `<p>Signed in as ${escapeHtml(interaction.session?.accountId ?? '')}</p>`;
  sendHtml(
    res,
    200,
    'Authorize',
    `<h1>Authorize ${who}</h1><p>The application asks for:</p><ul>${scopes}</ul>
<form method="post">${userField}
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button></form>`,
  );
}

/** Finishes the interaction with an OAuth error sent to the client's redirect URI. */
async function finishWithError(
  req: IncomingMessage,
  res: ServerResponse,
  deps: InteractionDeps,
  clientId: string,
  error: string,
  description: string,
): Promise<void> {
  await deps.events.refused(
    { client: { id: deps.clients.has(clientId) ? clientId : UNKNOWN_CLIENT }, errorCode: error },
    description,
  );
  await deps.provider.interactionFinished(
    req,
    res,
    { error, error_description: description },
    { mergeWithLastSubmission: false },
  );
}

/** Handles the form POST: sign-in, approval, launch redemption. */
async function submit(
  req: IncomingMessage,
  res: ServerResponse,
  interaction: Interaction,
  deps: InteractionDeps,
): Promise<void> {
  const form = await readForm(req);
  if (!form) return sendOAuthError(res, 400, 'invalid_request', 'a form body is required');
  const clientId = text(interaction.params.client_id) ?? '';
  const client = deps.clients.get(clientId);
  if (!client) return sendOAuthError(res, 400, 'invalid_request', 'unknown client');
  if (form.get('decision') === 'deny') {
    return finishWithError(
      req,
      res,
      deps,
      clientId,
      'access_denied',
      'the user denied the request',
    );
  }
  const login = interaction.prompt.name === 'login';
  const accountId = login ? form.get('user') : interaction.session?.accountId;
  if (!accountId || !deps.users.has(accountId)) {
    return sendOAuthError(res, 400, 'invalid_request', '"user" is not a known user');
  }
  const launchValue = text(interaction.params.launch);
  const launch = launchValue ? await deps.launches.redeem(launchValue, clientId) : undefined;
  if (launchValue && !launch) {
    return finishWithError(
      req,
      res,
      deps,
      clientId,
      'invalid_request',
      'launch is unknown, expired or already used',
    );
  }
  if (launch?.user !== undefined && launch.user !== accountId) {
    return finishWithError(req, res, deps, clientId, 'access_denied', 'launch is for another user');
  }
  const requested = splitScopes(text(interaction.params.scope));
  const permitted = permittedScopes(requested, scopePolicy(client), 'authorization_code');
  const grant = new deps.provider.Grant({ accountId, clientId });
  for (const scope of requested.filter((s) => (OIDC_SCOPES as readonly string[]).includes(s))) {
    if (permitted.includes(scope)) grant.addOIDCScope(scope);
    else grant.rejectOIDCScope(scope);
  }
  if (permitted.length) grant.addResourceScope(deps.fhirUrl, permitted.join(' '));
  const grantId = await grant.save();
  if (launch) {
    await deps.launches.bind(grantId, launch, deps.grantTtl);
    deps.events.logger.info({ clientId }, 'EHR launch redeemed');
  }
  await deps.provider.interactionFinished(
    req,
    res,
    { ...(login ? { login: { accountId } } : {}), consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
}

/** Serves `GET|POST /oauth/interaction/<uid>`. */
export async function handleInteraction(
  req: IncomingMessage,
  res: ServerResponse,
  uid: string,
  deps: InteractionDeps,
): Promise<void> {
  let interaction: Interaction;
  try {
    interaction = await deps.provider.interactionDetails(req, res);
  } catch {
    return sendOAuthError(res, 400, 'invalid_request', 'interaction session not found');
  }
  if (interaction.uid !== uid) {
    return sendOAuthError(res, 400, 'invalid_request', 'interaction session not found');
  }
  if (req.method === 'GET') return renderForm(res, interaction, deps);
  if (req.method === 'POST') return submit(req, res, interaction, deps);
  res.writeHead(405, { allow: 'GET, POST' }).end();
}
