/**
 * The tunnel fields of an agent's check-in replies, cached by ETag as the agent caches its last 8
 * replies: a 304 stands for the reply it matched. Used by the storm's tunnel agents and by the
 * push agents (a REQUIRED may also come by poll while the push channel is down), whose push
 * messages carry the same reply (`parsePushMessage`).
 */
import type { RawResponse } from './http1';

/** The tunnel fields of a check-in reply. */
export interface TunnelFields {
  status: string;
  port: number;
  credentials: string;
}

/** Replies the agent keeps (Portainer's agent: 8). */
const KEEP = 8;

export class ReplyCache {
  private readonly replies = new Map<string, TunnelFields>();

  /** The fields an answered check-in stands for (its body, or the cached reply a 304 matched); undefined when unknown. */
  read(res: RawResponse): TunnelFields | undefined {
    if (res.status === 304) return res.etag === undefined ? undefined : this.replies.get(res.etag);
    if (res.status !== 200) return undefined;
    let fields: TunnelFields;
    try {
      const o = JSON.parse(res.body.toString('utf8'));
      fields = { status: String(o.status ?? ''), port: Number(o.port ?? 0), credentials: String(o.credentials ?? '') };
    } catch {
      return undefined;
    }
    if (res.etag) this.remember(res.etag, fields);
    return fields;
  }

  /** A reply that came another way (a push `status` message), cached so a later 304 finds it. */
  remember(etag: string, fields: TunnelFields): void {
    this.replies.delete(etag);
    this.replies.set(etag, fields);
    while (this.replies.size > KEEP) this.replies.delete(this.replies.keys().next().value!);
  }
}

/** A push message as the load test counts it. */
export interface PushMessageInfo {
  /** `status`, `commands`, `timers`, another type the server may add, or `unreadable`. */
  type: string;
  /** A status message: the reply's fields that matter here. */
  status?: { status: string; credentials: string; checkin: number; etag: string };
}

/** Reads one text frame of the push channel (README "Push channel"; types in shared/contracts/push.ts). */
export function parsePushMessage(text: string): PushMessageInfo {
  let msg: any;
  try {
    msg = JSON.parse(text);
  } catch {
    return { type: 'unreadable' };
  }
  if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') return { type: 'unreadable' };
  if (msg.type !== 'status') return { type: msg.type };
  const body = msg.body;
  if (!body || typeof body !== 'object') return { type: 'unreadable' };
  return {
    type: 'status',
    status: {
      status: String(body.status ?? ''), credentials: String(body.credentials ?? ''),
      checkin: typeof body.checkin === 'number' ? body.checkin : 0, etag: typeof msg.etag === 'string' ? msg.etag : '',
    },
  };
}
