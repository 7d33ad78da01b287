/**
 * Shared HTTPS agents for crdkit's outbound calls (the EHR's FHIR API, token endpoints, payers'
 * CDS services): one keep-alive agent per trust and client-certificate setting, with crdkit's
 * client TLS options, so connections are reused across calls. Keyed by a digest of that
 * material, never the PEM itself.
 */
import { createHash } from 'node:crypto';
import { Agent } from 'node:https';
import { clientTlsOptions } from './options.js';

/** What an agent is for: the CA to trust, an optional client certificate, how many sockets. */
export interface AgentSettings {
  ca?: string | Buffer | undefined;
  cert?: string | Buffer | undefined;
  key?: string | Buffer | undefined;
  maxSockets: number;
}

const agents = new Map<string, Agent>();

/** The shared agent for `settings`, made on first use. */
export function sharedAgent(settings: AgentSettings): Agent {
  const { ca, cert, key, maxSockets } = settings;
  const id = createHash('sha256')
    .update(JSON.stringify([ca, cert, key].map((v) => (v ? v.toString() : ''))))
    .update(`|${maxSockets}`)
    .digest('hex');
  let agent = agents.get(id);
  if (!agent) {
    agent = new Agent({
      ...clientTlsOptions(ca),
      ...(cert !== undefined ? { cert } : {}),
      ...(key !== undefined ? { key } : {}),
      keepAlive: true,
      maxSockets,
    });
    agents.set(id, agent);
  }
  return agent;
}
