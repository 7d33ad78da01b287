/**
 * GET or POST for a search: FHIR lets a client send the same search as
 * `POST [type]/_search` with an `application/x-www-form-urlencoded` body, which readers use
 * when the GET URL would be too long for servers and proxies (long `_id` lists from prefetch).
 */

/** The usual safe limit for a URL's path and query (many proxies refuse longer ones). */
export const MAX_GET_LENGTH = 2000;

/**
 * `true` when `GET {type}?{params}` would be longer than `maxGetLength` characters, so the
 * reader should send `POST {type}/_search` with `params.toString()` as the form body instead.
 * The length is that of the relative URL, percent-encoded as `URLSearchParams` encodes it; a
 * reader with a long base URL passes a smaller limit.
 *
 * @example
 * shouldPost('Practitioner', new URLSearchParams({ _id: ids.join(',') })); // true for ~200 ids
 */
export function shouldPost(
  type: string,
  params: URLSearchParams,
  maxGetLength: number = MAX_GET_LENGTH,
): boolean {
  const query = params.toString();
  const length = type.length + (query ? 1 + query.length : 0);
  return length > maxGetLength;
}
