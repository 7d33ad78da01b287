/**
 * The tokens of the trail by `jti`: what each was issued for, and when it stopped being usable
 * (its own revocation or expiry, the end of its hook call, the revocation of the token it was
 * exchanged from).
 */
import type { TokenRecord } from './types.js';

/** Why a token stopped being usable. */
export type EndReason = 'revoked' | 'expired' | 'hook-ended' | 'subject-revoked';

/** A point in the trail: its time, and its position to order records of the same millisecond. */
export interface TokenEnd {
  at: number;
  index: number;
  reason: EndReason;
}

const ISSUING = new Set(['issued', 'exchanged', 'launch']);
/** Deep enough for any real delegation chain; stops a cycle of `subject-token` links. */
const MAX_CHAIN = 16;

function earlier(a: TokenEnd | undefined, b: TokenEnd | undefined): TokenEnd | undefined {
  if (!a || !b) return a ?? b;
  return b.at < a.at || (b.at === a.at && b.index < a.index) ? b : a;
}

/** Whether a record at (`at`, `index`) comes after `end`; an expiry ends at its own instant. */
export function isAfter(at: number, index: number, end: TokenEnd): boolean {
  return at > end.at || (at === end.at && index > end.index);
}

/** The token records of a trail, added in any order, queried once all are in. */
export class TokenIndex {
  readonly #issued = new Map<string, TokenRecord>();
  readonly #revoked = new Map<string, TokenEnd>();
  /** Revocations naming a hookInstance but no token: the hook call's tokens all ended. */
  readonly #hookEnded = new Map<string, TokenEnd>();

  add(record: TokenRecord): void {
    if (ISSUING.has(record.event) && record.tokenId && !this.#issued.has(record.tokenId)) {
      this.#issued.set(record.tokenId, record);
    }
    if (record.event !== 'revoked') return;
    const end = { at: record.at, index: record.index, reason: 'revoked' as const };
    if (record.tokenId) {
      this.#revoked.set(record.tokenId, earlier(this.#revoked.get(record.tokenId), end)!);
    } else if (record.hookInstance) {
      const hookEnd = { ...end, reason: 'hook-ended' as const };
      this.#hookEnded.set(
        record.hookInstance,
        earlier(this.#hookEnded.get(record.hookInstance), hookEnd)!,
      );
    }
  }

  /** The issuing record of `jti`, if the trail holds it. */
  get(jti: string): TokenRecord | undefined {
    return this.#issued.get(jti);
  }

  /** The hook call a token serves: its own, or that of the token it was exchanged from. */
  hookInstance(jti: string, depth = 0): string | undefined {
    const token = this.#issued.get(jti);
    if (!token || depth > MAX_CHAIN) return undefined;
    if (token.hookInstance) return token.hookInstance;
    return token.subjectTokenId ? this.hookInstance(token.subjectTokenId, depth + 1) : undefined;
  }

  /** The earliest end of `jti`: revoked, expired, its hook call ended, its subject revoked. */
  end(jti: string): TokenEnd | undefined {
    const token = this.#issued.get(jti);
    const expiry: TokenEnd | undefined =
      token?.expiresAt !== undefined
        ? { at: token.expiresAt, index: -Infinity, reason: 'expired' }
        : undefined;
    return earlier(this.#revocation(jti, 0), expiry);
  }

  /** Revocation only (an expiry is not inherited: a delegate token carries its own). */
  #revocation(jti: string, depth: number): TokenEnd | undefined {
    if (depth > MAX_CHAIN) return undefined;
    const token = this.#issued.get(jti);
    let end = this.#revoked.get(jti);
    const hookInstance = this.hookInstance(jti);
    if (hookInstance) end = earlier(end, this.#hookEnded.get(hookInstance));
    if (token?.subjectTokenId) {
      const subject = this.#revocation(token.subjectTokenId, depth + 1);
      if (subject) end = earlier(end, { ...subject, reason: 'subject-revoked' });
    }
    return end;
  }
}
