import type { IncomingHttpHeaders } from 'node:http';
import { LRUCache } from 'lru-cache';
import { DEFAULT_AGENT_MESSAGE, verifyAgentRequest } from '../shared/protocol';
import type { RequestVerifier } from './api-server';

const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

/**
 * The agent's check of the server's signature (reference 3.3). Default: trust on first use — the
 * first valid public key is kept and only it is accepted afterwards. With AGENT_SECRET, any key
 * whose signature is over the shared secret is accepted and nothing is pinned.
 */
export function createSignatureVerifier(opts: { secret?: string } = {}): RequestVerifier & { pinnedKey(): string | undefined } {
  let pinned: string | undefined;
  // The signed message never changes, so the server sends the same few signatures again and
  // again: a pair verified once need not cost another ECDSA verification (milliseconds in JS).
  const verified = new LRUCache<string, true>({ max: 64 });
  const verify = (headers: IncomingHttpHeaders): string | null => {
    const signature = first(headers['x-portaineragent-signature']);
    const publicKey = first(headers['x-portaineragent-publickey']);
    if (!signature || !publicKey) return 'Missing request signature headers';
    if (!opts.secret && pinned && publicKey !== pinned) return 'Invalid request signature';
    const pair = `${publicKey}\n${signature}`;
    let ok = verified.has(pair);
    if (!ok) {
      try {
        ok = verifyAgentRequest(publicKey, signature, opts.secret || DEFAULT_AGENT_MESSAGE);
      } catch {
        ok = false;
      }
      if (!ok) return 'Invalid request signature';
      verified.set(pair, true);
    }
    if (!opts.secret && !pinned) pinned = publicKey;
    return null;
  };
  return Object.assign(verify, { pinnedKey: () => pinned });
}
