/** Errors of the stores by code: made with a code, and read back as one safe to log. */

/** The driver error code of `err` (never its message, which may quote values). */
export function driverCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[\w.-]{1,40}$/.test(code)) return code;
  return err instanceof Error ? err.name : 'unknown';
}

/** An error carrying `code`, as {@link driverCode} reads it back. */
export function codedError(code: string, message = `SQLite thread: ${code}`): Error {
  return Object.assign(new Error(message), { code });
}
