/** The code of a database driver's error, safe to log. */

/** The driver error code of `err` (never its message, which may quote values). */
export function driverCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[\w.-]{1,40}$/.test(code)) return code;
  return err instanceof Error ? err.name : 'unknown';
}
