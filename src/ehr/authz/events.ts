/**
 * Token events of the authorization server (sec-9): each issuance, revocation, refusal and EHR
 * launch becomes one `appendToken` audit record and one log line for operators. Never the token:
 * only its audit id (`tid`). Issuance is fail-closed (the caller withdraws the token when the
 * record cannot be written); a refusal whose record fails is still refused, and logged.
 */
import type { Logger } from 'pino';
import type { AuditStore, TokenAuditInput } from '../../audit/types.js';

/** A token event without the time and instance (added here). */
export type TokenEvent = Omit<TokenAuditInput, 'at' | 'instance'>;

/** The logger calls made (a pino logger fits). */
export type EventLogger = Pick<Logger, 'info' | 'warn' | 'error'>;

const silent: EventLogger = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
} as unknown as EventLogger;

/** The client id recorded for a refusal whose client is not registered. */
export const UNKNOWN_CLIENT = '(unregistered)';

/** `Patient/<id>` for the audit record, from an internal id. */
export const patientRef = (id: string | undefined): string | undefined =>
  id ? `Patient/${id}` : undefined;

/** Records token events in the audit store (when one is configured) and the log. */
export class TokenEvents {
  readonly logger: EventLogger;

  constructor(
    private readonly audit: AuditStore | undefined,
    private readonly instance: string,
    private readonly now: () => Date,
    logger?: EventLogger,
  ) {
    this.logger = logger ?? silent;
  }

  /** Records `event`; throws when the audit store cannot write it (fail-closed). */
  async record(event: TokenEvent): Promise<void> {
    this.logger.info(
      {
        event: event.event,
        clientId: event.client.id,
        grantType: event.grantType,
        tokenId: event.tokenId,
        errorCode: event.errorCode,
      },
      `OAuth token event: ${event.event}`,
    );
    if (this.audit) {
      await this.audit.appendToken({ ...event, at: this.now(), instance: this.instance });
    }
  }

  /**
   * Records a refused request. `detail` is oidc-provider's fixed explanation (never a token);
   * it goes to the log only. A failure to write the record is logged, the refusal stands.
   */
  async refused(event: Omit<TokenEvent, 'event'>, detail?: string): Promise<void> {
    this.logger.warn(
      { clientId: event.client.id, grantType: event.grantType, error: event.errorCode, detail },
      'OAuth request refused',
    );
    if (!this.audit) return;
    try {
      await this.audit.appendToken({
        ...event,
        event: 'refused',
        at: this.now(),
        instance: this.instance,
      });
    } catch (err) {
      this.logger.error(
        { err: { name: (err as Error).name, code: (err as { code?: string }).code } },
        'the audit record of a refused OAuth request could not be written',
      );
    }
  }
}
