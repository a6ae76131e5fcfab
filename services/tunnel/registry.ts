import crypto from 'node:crypto';
import type { Socket } from 'node:net';
import { AppError } from '../../shared/errors';
import { VIRTUAL_PORT_MAX, VIRTUAL_PORT_MIN, type ChannelSocket, type TunnelOpened, type TunnelStatusInfo } from '../../shared/tunnel';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** How many tunnels one node can hold at once: one per virtual port. */
export const VIRTUAL_PORTS = VIRTUAL_PORT_MAX - VIRTUAL_PORT_MIN + 1;

/** Every virtual port of this node is held by a live tunnel: new ones wait until some close. */
export class TunnelCapacityError extends AppError {
  constructor() {
    super(`Every virtual tunnel port in [${VIRTUAL_PORT_MIN}, ${VIRTUAL_PORT_MAX}] is held by a live tunnel of this node`, 503, 'TUNNEL_CAPACITY', { tunnels: VIRTUAL_PORTS }, { retryable: true });
  }
}

/** What the registry needs of a connected agent session. */
export interface SessionHandle {
  /** Ends the SSH session; resolves once it is gone. */
  close(): Promise<void>;
  /** True once the agent's `config` was accepted and until the session ends. */
  readonly connected: boolean;
  /** A connection to the agent for a caller in this process: a channel dressed as a socket. */
  openSocket(): Promise<ChannelSocket>;
  /** Joins `socket` to a new channel to the agent; `accepted` runs once it is open, before any byte is piped. */
  forward(socket: Socket, accepted: () => void): Promise<void>;
}

/** One environment's tunnel, held in memory only (as in Portainer, nothing is persisted). */
export interface TunnelEntry {
  readonly id: number;
  /** Virtual port: the tunnel's name on this node and in the agent's reverse remote. Nothing listens on it. */
  readonly port: number;
  /** Proves a caller in another process got the tunnel's route from this node (`tunnel.ensureTunnel`). */
  readonly token: string;
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

/** Whether two secrets are equal, in time that depends on neither (digests make their lengths equal too). */
export function sameSecret(a: string, b: string): boolean {
  const digest = (s: string) => crypto.createHash('sha256').update(s).digest();
  return crypto.timingSafeEqual(digest(a), digest(b));
}

/**
 * Tunnels by environment id, by login and by virtual port. A tunnel's port is drawn at random from
 * [1024, 65535], never one another live tunnel of this node holds; no socket is bound to it, so
 * nothing else on the machine can take it and the node holds up to {@link VIRTUAL_PORTS} tunnels.
 */
export class TunnelRegistry {
  private readonly byId = new Map<number, TunnelEntry>();
  private readonly byUser = new Map<string, TunnelEntry>();
  private readonly byPort = new Map<number, TunnelEntry>();
  // Compared against when no tunnel has the port, so an unknown port costs what a wrong token does.
  private readonly decoy = crypto.randomBytes(32).toString('base64url');

  /**
   * The environment's tunnel, made if needed. Spent credentials of a tunnel whose agent is no
   * longer connected are replaced, so an agent whose session dropped can log in again at once.
   */
  open(id: number): TunnelOpened {
    let entry = this.byId.get(id);
    if (!entry) entry = this.create(id);
    else if (entry.used && !entry.session) {
      this.byUser.delete(entry.user);
      entry.user = this.freshUser();
      entry.pass = randomToken();
      entry.used = false;
      this.byUser.set(entry.user, entry);
    }
    entry.lastActivity = Date.now();
    return { port: entry.port, credentials: `${entry.user}:${entry.pass}` };
  }

  /** Checks a login and spends the credentials; undefined for anything but an unused exact match. */
  login(user: string, pass: string): TunnelEntry | undefined {
    const entry = this.byUser.get(user);
    if (!entry || entry.used || !sameSecret(pass, entry.pass)) return undefined;
    entry.used = true;
    this.byUser.delete(user);
    return entry;
  }

  /**
   * The connected tunnel named by virtual `port`, if `token` is its token; undefined for an unknown
   * port, a wrong token or a tunnel whose agent is not connected.
   */
  authorize(port: number, token: string): (TunnelEntry & { session: SessionHandle }) | undefined {
    const entry = this.byPort.get(port);
    if (!sameSecret(token, entry?.token ?? this.decoy) || !entry?.session?.connected) return undefined;
    return entry as TunnelEntry & { session: SessionHandle };
  }

  /** A channel to the agent of tunnel `port` for a caller in this process that holds its `token`. */
  async openSocket(port: number, token: string): Promise<ChannelSocket> {
    const entry = this.authorize(port, token);
    if (!entry) throw new Error(`no connected tunnel ${port} with that token on this node`);
    return entry.session.openSocket();
  }

  /** The environment's virtual port and token, for its route; undefined without a tunnel. */
  route(id: number): { port: number; token: string } | undefined {
    const entry = this.byId.get(id);
    return entry && { port: entry.port, token: entry.token };
  }

  /** Whether `entry` is still the live tunnel of its environment (not closed meanwhile). */
  isCurrent(entry: TunnelEntry): boolean {
    return this.byId.get(entry.id) === entry;
  }

  /** Removes the tunnel, revokes its credentials and frees its port; the caller closes its session. */
  remove(id: number): TunnelEntry | undefined {
    const entry = this.byId.get(id);
    if (!entry) return undefined;
    this.byId.delete(id);
    this.byUser.delete(entry.user);
    this.byPort.delete(entry.port);
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
    return { open: !!entry.session?.connected, port: entry.port, lastActivity: entry.lastActivity };
  }

  /** Every tunnel, for shutdown. */
  all(): TunnelEntry[] {
    return [...this.byId.values()];
  }

  private create(id: number): TunnelEntry {
    const port = this.freePort();
    const entry: TunnelEntry = {
      id, port, token: crypto.randomBytes(32).toString('base64url'), user: this.freshUser(), pass: randomToken(), used: false, lastActivity: Date.now(),
    };
    this.byId.set(id, entry);
    this.byUser.set(entry.user, entry);
    this.byPort.set(port, entry);
    return entry;
  }

  /** Vanishingly rare, but a login must name exactly one tunnel. */
  private freshUser(): string {
    let user = randomToken();
    while (this.byUser.has(user)) user = randomToken();
    return user;
  }

  /**
   * A random port no live tunnel holds: the first free one from a random start, so the draw stays
   * one lookup while the node is far from full and never fails while any port is free.
   */
  private freePort(): number {
    if (this.byPort.size >= VIRTUAL_PORTS) throw new TunnelCapacityError();
    let port = crypto.randomInt(VIRTUAL_PORT_MIN, VIRTUAL_PORT_MAX + 1);
    while (this.byPort.has(port)) port = port === VIRTUAL_PORT_MAX ? VIRTUAL_PORT_MIN : port + 1;
    return port;
  }
}
