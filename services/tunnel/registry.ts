import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import type { TunnelOpened, TunnelStatusInfo } from '../../shared/tunnel';

/** First port of the range tunnels listen on (IANA dynamic ports), as Portainer picks them. */
export const PORT_MIN = 49152;
/** End (exclusive) of the range. */
export const PORT_MAX = 65535;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** What the registry needs of a connected agent session. */
export interface SessionHandle {
  /** Ends the SSH session and its reverse listener; resolves once the listener is gone. */
  close(): Promise<void>;
  /** True once the config was accepted and `127.0.0.1:<port>` listens. */
  readonly listening: boolean;
}

/** One environment's tunnel, held in memory only (as in Portainer, nothing is persisted). */
export interface TunnelEntry {
  readonly id: number;
  /** Changes only when the port turned out to be taken before the agent connected (`relocate`). */
  port: number;
  user: string;
  pass: string;
  /** Set by the first successful login: the credentials never work again. */
  used: boolean;
  session?: SessionHandle;
  lastActivity: number;
}

/** Random `[A-Za-z0-9]{n}` from a CSPRNG, like Portainer's `uniuri` credentials. */
export function randomToken(n = 8): string {
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[crypto.randomInt(ALPHABET.length)];
  return s;
}

/**
 * Where tunnel ports are drawn from: Portainer's [49152, 65535) without the kernel's ephemeral
 * range (Linux: 32768–60999), from which every outbound connection takes its source port, so a
 * busy server's own connections do not take a port between its allocation and the agent's login.
 */
export function tunnelPortRange(ephemeral: [number, number] | null = readEphemeralRange()): { min: number; max: number } {
  if (!ephemeral) return { min: PORT_MIN, max: PORT_MAX };
  const [lo, hi] = ephemeral;
  if (hi + 1 < PORT_MAX - 512 && hi + 1 >= PORT_MIN && lo <= PORT_MIN) return { min: hi + 1, max: PORT_MAX };
  if (lo > PORT_MIN + 512 && lo <= PORT_MAX && hi >= PORT_MAX - 1) return { min: PORT_MIN, max: lo };
  return { min: PORT_MIN, max: PORT_MAX };
}

/** The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`), or null where it cannot be read. */
export function readEphemeralRange(): [number, number] | null {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return Number.isInteger(lo) && Number.isInteger(hi) ? [lo, hi] : null;
  } catch {
    return null;
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen({ port, host: '127.0.0.1', exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/**
 * Tunnels by environment id and by login. Ports are drawn at random from [49152, 65535), never one
 * another tunnel holds nor one something else on 127.0.0.1 is bound to right now.
 */
export class TunnelRegistry {
  private readonly byId = new Map<number, TunnelEntry>();
  private readonly byUser = new Map<string, TunnelEntry>();
  private readonly reserved = new Set<number>();
  private readonly opening = new Map<number, Promise<TunnelEntry>>();

  /**
   * The environment's tunnel, made if needed. Spent credentials of a tunnel whose agent is no
   * longer connected are replaced, so an agent whose session dropped can log in again at once.
   */
  async open(id: number): Promise<TunnelOpened> {
    let entry = this.byId.get(id);
    if (!entry) {
      let pending = this.opening.get(id);
      if (!pending) {
        pending = this.create(id).finally(() => this.opening.delete(id));
        this.opening.set(id, pending);
      }
      entry = await pending;
    } else if (entry.used && !entry.session) {
      this.byUser.delete(entry.user);
      entry.user = randomToken();
      entry.pass = randomToken();
      entry.used = false;
      this.byUser.set(entry.user, entry);
    }
    entry.lastActivity = Date.now();
    return { port: entry.port, credentials: `${entry.user}:${entry.pass}` };
  }

  /**
   * Moves a tunnel whose port turned out to be taken (an outbound connection may get any free port
   * as its source) to a fresh port with fresh credentials; undefined if it is gone or connected.
   */
  async relocate(id: number): Promise<TunnelOpened | undefined> {
    const entry = this.byId.get(id);
    if (!entry || entry.session?.listening) return undefined;
    const port = await this.allocatePort();
    if (this.byId.get(id) !== entry) {
      this.reserved.delete(port);
      return undefined;
    }
    this.reserved.delete(entry.port);
    entry.port = port;
    this.byUser.delete(entry.user);
    entry.user = randomToken();
    entry.pass = randomToken();
    entry.used = false;
    this.byUser.set(entry.user, entry);
    return { port, credentials: `${entry.user}:${entry.pass}` };
  }

  /** Checks a login and spends the credentials; undefined for anything but an unused exact match. */
  login(user: string, pass: string): TunnelEntry | undefined {
    const entry = this.byUser.get(user);
    if (!entry || entry.used) return undefined;
    const a = Buffer.from(pass);
    const b = Buffer.from(entry.pass);
    if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) return undefined;
    entry.used = true;
    this.byUser.delete(user);
    return entry;
  }

  /** Whether `entry` is still the live tunnel of its environment (not closed meanwhile). */
  isCurrent(entry: TunnelEntry): boolean {
    return this.byId.get(entry.id) === entry;
  }

  /** Removes the tunnel and revokes its credentials; the caller closes its session. */
  remove(id: number): TunnelEntry | undefined {
    const entry = this.byId.get(id);
    if (!entry) return undefined;
    this.byId.delete(id);
    this.byUser.delete(entry.user);
    this.reserved.delete(entry.port);
    return entry;
  }

  /** Marks the tunnel in use now (a Docker call, or an open interactive session). */
  touch(id: number): void {
    const entry = this.byId.get(id);
    if (entry) entry.lastActivity = Date.now();
  }

  /** Public view for `tunnel.status`. */
  status(id: number): TunnelStatusInfo {
    const entry = this.byId.get(id);
    if (!entry) return { open: false, port: 0, lastActivity: 0 };
    return { open: !!entry.session?.listening, port: entry.port, lastActivity: entry.lastActivity };
  }

  /** Every tunnel, for shutdown. */
  all(): TunnelEntry[] {
    return [...this.byId.values()];
  }

  private async create(id: number): Promise<TunnelEntry> {
    const port = await this.allocatePort();
    const entry: TunnelEntry = { id, port, user: randomToken(), pass: randomToken(), used: false, lastActivity: Date.now() };
    // Vanishingly rare, but a login must name exactly one tunnel.
    while (this.byUser.has(entry.user)) entry.user = randomToken();
    this.byId.set(id, entry);
    this.byUser.set(entry.user, entry);
    return entry;
  }

  private readonly range = tunnelPortRange();

  private async allocatePort(): Promise<number> {
    for (let attempt = 0; attempt < 200; attempt++) {
      const port = crypto.randomInt(this.range.min, this.range.max);
      if (this.reserved.has(port)) continue;
      this.reserved.add(port);
      if (await canListen(port)) return port;
      this.reserved.delete(port);
    }
    throw new Error(`no free tunnel port in [${this.range.min}, ${this.range.max})`);
  }
}
