/*
 * ETags of edge poll replies (reference 1.7 step 9): Portainer hashes the exact JSON bytes it
 * sends (Go's encoder output, trailing newline included) with FNV-1a 32-bit and sends the hash as
 * lowercase hex, unquoted and not zero-padded (`strconv.FormatUint(h.Sum32(), 16)`).
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a 32-bit of the bytes (a string is hashed as its UTF-8 encoding), as an unsigned integer. */
export function fnv1a32(data: Buffer | Uint8Array | string): number {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let h = FNV_OFFSET;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i];
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

/** The ETag Portainer sends for a reply body: lowercase hex FNV-1a 32-bit, unquoted, unpadded. */
export function etag(body: Buffer | Uint8Array | string): string {
  return fnv1a32(body).toString(16);
}

/** Most tags an agent sends (its LRU holds 8 replies); more are ignored. */
export const MAX_IF_NONE_MATCH_TAGS = 8;

/**
 * The tags of an `If-None-Match` header: a comma-separated list. Portainer's agent sends bare
 * tags; quotes and a weak `W/` prefix are tolerated so HTTP caches in between do not break 304s.
 */
export function parseIfNoneMatch(header: string | undefined): string[] {
  if (!header) return [];
  const out: string[] = [];
  for (const raw of header.split(',')) {
    let t = raw.trim();
    if (t.startsWith('W/')) t = t.slice(2);
    if (t.length >= 2 && t.startsWith('"') && t.endsWith('"')) t = t.slice(1, -1);
    if (t) out.push(t);
    if (out.length === MAX_IF_NONE_MATCH_TAGS) break;
  }
  return out;
}

/** True when `header` (an `If-None-Match` value) lists `current`. */
export function ifNoneMatchHits(header: string | undefined, current: string): boolean {
  return parseIfNoneMatch(header).includes(current);
}
