/**
 * The chisel v3 wire vocabulary (jpillora/chisel 1.10, see PROTOCOL.md): names on the wire, the
 * remote syntax and the JSON of the `config` request. Pure functions, no I/O.
 */

/** WebSocket subprotocol a chisel client asks for and a chisel server requires. */
export const CHISEL_SUBPROTOCOL = 'chisel-v3';
/**
 * Software part of our SSH identification lines. chisel sends `SSH-chisel-v3-server` /
 * `SSH-chisel-v3-client` without the `2.0-` that RFC 4253 asks for; ssh2 always writes
 * `SSH-2.0-<ident>`, which Go's SSH (and so chisel) accepts as well.
 */
export const SERVER_IDENT = 'chisel-v3-server';
export const CLIENT_IDENT = 'chisel-v3-client';
/** SSH global request carrying the client's JSON config, answered once by the server. */
export const CONFIG_REQUEST = 'config';
/** SSH global request used as keepalive; chisel answers it with the payload `pong`. */
export const PING_REQUEST = 'ping';
export const PONG_PAYLOAD = 'pong';
/** SSH channel type of every tunnelled connection; its extra data is the target `host:port`. */
export const CHISEL_CHANNEL = 'chisel';
/** How long a chisel server waits for the `config` request after authentication. */
export const CONFIG_TIMEOUT_MS = 10_000;

/**
 * One remote, field for field as chisel's `settings.Remote` marshals to JSON (Go field names,
 * ports as strings). `R:8000:10.0.0.5:9001` is `{Reverse: true, LocalHost: '0.0.0.0',
 * LocalPort: '8000', RemoteHost: '10.0.0.5', RemotePort: '9001', ...}`.
 */
export interface ChiselRemote {
  LocalHost: string;
  LocalPort: string;
  LocalProto: string;
  RemoteHost: string;
  RemotePort: string;
  RemoteProto: string;
  Socks: boolean;
  Reverse: boolean;
  Stdio: boolean;
}

/** The payload of the `config` request: chisel's `settings.Config{Version, Remotes}`. */
export interface ChiselConfig {
  Version: string;
  Remotes: ChiselRemote[];
}

const PART = /(\[[A-Za-z0-9:/]+\]|[^\s:]+):?/g;
const PROTO_SUFFIX = /\/(tcp|udp)$/i;
const isPort = (s: string) => /^[0-9]+$/.test(s) && Number(s) > 0 && Number(s) <= 65535;

/**
 * Parses chisel's remote syntax (`[R:][local-host:][local-port:]remote-host:remote-port[/proto]`,
 * plus `socks` and `stdio`) the way chisel's `DecodeRemote` does: parts are read from the last
 * one back, so the remote side fills first and the local side defaults from it.
 */
export function decodeRemote(spec: string): ChiselRemote {
  let s = spec;
  const reverse = s.startsWith('R:');
  if (reverse) s = s.slice(2);
  const parts = [...s.matchAll(PART)].map((m) => m[1]);
  if (parts.length === 0 || parts.length > 4) throw new Error(`invalid remote "${spec}"`);
  const r: ChiselRemote = { LocalHost: '', LocalPort: '', LocalProto: '', RemoteHost: '', RemotePort: '', RemoteProto: '', Socks: false, Reverse: reverse, Stdio: false };
  for (let i = parts.length - 1; i >= 0; i--) {
    let p = parts[i];
    if (i === parts.length - 1 && p === 'socks') { r.Socks = true; continue; }
    if (i === 0 && p === 'stdio') { r.Stdio = true; continue; }
    const proto = PROTO_SUFFIX.exec(p)?.[1]?.toLowerCase();
    if (proto) {
      p = p.slice(0, -proto.length - 1);
      if (!r.RemotePort) r.RemoteProto = proto;
      else if (!r.LocalProto) r.LocalProto = proto;
    }
    if (isPort(p)) {
      if (!r.Socks && !r.RemotePort) r.RemotePort = p;
      r.LocalPort = p;
      continue;
    }
    if (!r.Socks && !r.RemotePort && !r.LocalPort) throw new Error(`invalid remote "${spec}": missing ports`);
    if (!r.Socks && !r.RemoteHost) r.RemoteHost = p;
    else r.LocalHost = p;
  }
  if (r.Socks) {
    r.LocalHost ||= '127.0.0.1';
    r.LocalPort ||= '1080';
  } else {
    r.LocalHost ||= '0.0.0.0';
    r.RemoteHost ||= '127.0.0.1';
  }
  r.RemoteProto ||= 'tcp';
  r.LocalProto ||= r.RemoteProto;
  if (r.LocalProto !== r.RemoteProto) throw new Error(`invalid remote "${spec}": cross-protocol remotes are not supported`);
  if (r.Stdio && r.Reverse) throw new Error(`invalid remote "${spec}": stdio cannot be reversed`);
  return r;
}

/**
 * The string a chisel server checks against a user's address regexes: `R:<local-host>:<local-port>`
 * for a reverse remote (so `R:8000:x:y` is `R:0.0.0.0:8000`), `<remote-host>:<remote-port>` otherwise.
 */
export function userAddr(r: ChiselRemote): string {
  return r.Reverse ? `R:${r.LocalHost}:${r.LocalPort}` : `${r.RemoteHost}:${r.RemotePort}`;
}

/** The extra data of the `chisel` channel opened for this remote: its target, as `host:port`. */
export function channelTarget(r: ChiselRemote): string {
  if (r.Socks) return 'socks';
  const target = `${r.RemoteHost || '127.0.0.1'}:${r.RemotePort}`;
  return r.RemoteProto === 'udp' ? `${target}/udp` : target;
}

/** The `config` request payload, as Go's `json.Marshal` writes it. */
export function encodeConfig(c: ChiselConfig): Buffer {
  return Buffer.from(JSON.stringify({ Version: c.Version, Remotes: c.Remotes }), 'utf8');
}

/**
 * Reads a `config` payload. Like Go's decoder it ignores unknown fields and fills missing ones
 * with zero values; anything that is not an object with a list of remote objects is an error.
 */
export function decodeConfig(payload: Buffer): ChiselConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    throw new Error('Invalid JSON config', { cause: err });
  }
  if (!raw || typeof raw !== 'object') throw new Error('Invalid JSON config');
  const obj = raw as Record<string, unknown>;
  const remotes = obj.Remotes ?? [];
  if (!Array.isArray(remotes)) throw new Error('Invalid JSON config: Remotes is not a list');
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  return {
    Version: str(obj.Version),
    Remotes: remotes.map((item) => {
      if (!item || typeof item !== 'object') throw new Error('Invalid JSON config: remote is not an object');
      const x = item as Record<string, unknown>;
      return {
        LocalHost: str(x.LocalHost), LocalPort: str(x.LocalPort), LocalProto: str(x.LocalProto),
        RemoteHost: str(x.RemoteHost), RemotePort: str(x.RemotePort), RemoteProto: str(x.RemoteProto),
        Socks: x.Socks === true, Reverse: x.Reverse === true, Stdio: x.Stdio === true,
      };
    }),
  };
}
