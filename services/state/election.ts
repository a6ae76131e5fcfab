import { EventEmitter } from 'node:events';
import Redis from 'ioredis';

/**
 * Who may write. `elected` fires when this replica wins the lease, `deposed` the moment it can no
 * longer be sure it holds it (renewal failed, or its lease deadline passed on the local clock).
 * The fencing token itself is minted by the store at claim time (Store.claimFence), so even a
 * replica that wrongly believes it leads cannot write past a newer leader.
 */
export interface Election extends EventEmitter {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** True only while the lease is held and its deadline has not passed. */
  isLeader(): boolean;
  /** The node that holds the lease as last seen, or null during an election gap. */
  leaderNodeID(): string | null;
}

/** The embedded shape: one state replica, leader from the start. */
export class LocalElection extends EventEmitter implements Election {
  private leading = false;
  constructor(private readonly nodeID: string) {
    super();
  }
  async start() {
    this.leading = true;
    this.emit('elected');
  }
  async stop() {
    if (this.leading) {
      this.leading = false;
      this.emit('deposed', 'stopped');
    }
  }
  isLeader() {
    return this.leading;
  }
  leaderNodeID() {
    return this.leading ? this.nodeID : null;
  }
}

// Renew only if we still own the key; a plain PEXPIRE could extend someone else's lease.
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

/**
 * A lease in Redis: `SET key nodeID NX PX ttl`, renewed every ttl/4 by its owner. The owner
 * counts its deadline from the moment it *sent* the renewal, minus a clock-drift margin, so it
 * always believes it has lost the lease before Redis lets anyone else take it.
 */
export class RedisElection extends EventEmitter implements Election {
  private readonly redis: Redis;
  private readonly key: string;
  private deadline = 0;
  private leading = false;
  private knownLeader: string | null = null;
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(private readonly opts: { redisUrl: string; namespace: string; nodeID: string; ttlMs: number }) {
    super();
    this.key = `${opts.namespace}:state:leader`;
    this.redis = new Redis(opts.redisUrl, {
      lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false,
      connectTimeout: Math.min(2000, opts.ttlMs), commandTimeout: Math.max(200, Math.floor(opts.ttlMs / 4)),
    });
    this.redis.on('error', () => undefined); // surfaced through failed commands; ioredis reconnects itself
  }

  async start() {
    await this.redis.connect();
    this.running = true;
    await this.tick();
  }

  async stop() {
    this.running = false;
    clearTimeout(this.timer);
    if (this.leading) {
      this.stepDown('stopped');
      await this.redis.eval(RELEASE, 1, this.key, this.opts.nodeID).catch(() => undefined);
    }
    this.redis.disconnect();
  }

  isLeader() {
    if (this.leading && Date.now() >= this.deadline) this.stepDown('lease deadline passed');
    return this.leading;
  }

  leaderNodeID() {
    return this.isLeader() ? this.opts.nodeID : this.knownLeader;
  }

  private margin() {
    return Math.max(100, Math.floor(this.opts.ttlMs * 0.2));
  }

  private stepDown(reason: string) {
    if (!this.leading) return;
    this.leading = false;
    this.knownLeader = null;
    clearTimeout(this.deadlineTimer);
    this.emit('deposed', reason);
  }

  private deadlineTimer: NodeJS.Timeout | undefined;
  private armDeadline() {
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = setTimeout(() => this.isLeader(), Math.max(0, this.deadline - Date.now()) + 1);
  }

  private async tick(): Promise<void> {
    if (!this.running) return;
    const sentAt = Date.now();
    const { ttlMs, nodeID } = this.opts;
    try {
      if (this.leading) {
        const ok = await this.redis.eval(RENEW, 1, this.key, nodeID, String(ttlMs));
        if (ok === 1) {
          this.deadline = sentAt + ttlMs - this.margin();
          this.armDeadline();
        } else this.stepDown('lease taken by another replica');
      } else {
        const won = await this.redis.set(this.key, nodeID, 'PX', ttlMs, 'NX');
        if (won === 'OK') {
          this.deadline = sentAt + ttlMs - this.margin();
          this.leading = true;
          this.knownLeader = nodeID;
          this.armDeadline();
          this.emit('elected');
        } else {
          this.knownLeader = await this.redis.get(this.key);
        }
      }
    } catch (err) {
      // Redis unreachable: a leader keeps its lease until the deadline, then isLeader() deposes it.
      if (!this.leading) this.knownLeader = null;
      this.emit('warning', err);
    }
    if (!this.running) return;
    const period = this.leading ? Math.floor(ttlMs / 4) : Math.floor(ttlMs / 6);
    this.timer = setTimeout(() => void this.tick(), Math.max(50, period));
  }
}
