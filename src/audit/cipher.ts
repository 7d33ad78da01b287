/**
 * Payload encryption at rest: AES-256-GCM, a random 12-byte IV per payload, the record id and
 * the part (`request` or `response`) as additional authenticated data, so a ciphertext moved to
 * another record or part fails to decrypt. Stored as `iv (12) | tag (16) | ciphertext`.
 * Rotation: the `current` key encrypts; every configured key decrypts what it encrypted.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ConfigError } from '../config/load.js';
import { AuditError } from './errors.js';

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Which body of a hook call a payload holds. */
export type PayloadPart = 'request' | 'response';

/** Encrypts and decrypts payloads with the configured keys. */
export class PayloadCipher {
  readonly #keys = new Map<string, Buffer>();

  /**
   * Checks the configuration: every key is base64 of exactly 32 bytes and `current` names one.
   * Throws a `ConfigError` naming `audit.encryption…` (never printing a key).
   *
   * @example
   * ```ts
   * const k1 = randomBytes(32).toString('base64');
   * const cipher = new PayloadCipher({ keys: { k1 }, current: 'k1' });
   * ```
   */
  constructor(config: { keys: Record<string, string>; current: string }) {
    for (const [keyId, base64] of Object.entries(config.keys)) {
      if (!/^[\w.-]{1,64}$/.test(keyId)) {
        throw new ConfigError('audit.encryption.keys', 'key ids must be 1 to 64 of [A-Za-z0-9_.-]');
      }
      const key = Buffer.from(base64, 'base64');
      if (key.length !== 32 || key.toString('base64') !== base64.trim()) {
        throw new ConfigError(`audit.encryption.keys.${keyId}`, 'must be base64 of 32 bytes');
      }
      this.#keys.set(keyId, key);
    }
    if (!this.#keys.has(config.current)) {
      throw new ConfigError('audit.encryption.current', 'must name one of "keys"');
    }
    this.currentKeyId = config.current;
  }

  /** The key id that encrypts new payloads. */
  readonly currentKeyId: string;

  /** `plain` encrypted with the current key, bound to record `id` and `part`. */
  encrypt(id: string, part: PayloadPart, plain: Buffer): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#keys.get(this.currentKeyId)!, iv);
    cipher.setAAD(Buffer.from(`${id}|${part}`, 'utf8'));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), body]);
  }

  /** The plain bytes of `sealed`; `ERR_AUDIT_KEY_UNKNOWN` or `ERR_AUDIT_DECRYPT` otherwise. */
  decrypt(keyId: string, id: string, part: PayloadPart, sealed: Buffer): Buffer {
    const key = this.#keys.get(keyId);
    if (!key) throw new AuditError('ERR_AUDIT_KEY_UNKNOWN', `"${part}"`);
    if (sealed.length < IV_BYTES + TAG_BYTES)
      throw new AuditError('ERR_AUDIT_DECRYPT', `"${part}"`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(`${id}|${part}`, 'utf8'));
      decipher.setAuthTag(sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([
        decipher.update(sealed.subarray(IV_BYTES + TAG_BYTES)),
        decipher.final(),
      ]);
    } catch {
      throw new AuditError('ERR_AUDIT_DECRYPT', `"${part}"`);
    }
  }
}
