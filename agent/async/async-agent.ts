import type { Logger } from 'pino';
import { collectDockerSnapshot, type DockerSnapshot } from '../../shared/snapshot';
import type { AgentConfig } from '../config';
import { dockerGetJson } from '../docker';
import { PushChannel, type PushChannelOptions } from '../push';
import { AsyncClient } from './client';
import { executeCommand } from './commands';
import { Journal } from './journal';
import { CommandRunner, type Execute } from './runner';
import { Scheduler, type Flags, type Intervals, type SchedulerOptions } from './scheduler';
import { SnapshotDiffer, type PreparedSnapshot } from './snapshots';
import type { AsyncRequestBody, AsyncResponse } from './wire';

/** Everything the async loop needs; `takeSnapshot` and `execute` default to the local engine. */
export interface AsyncAgentOptions {
  apiUrl: string;
  edgeId: string;
  agentVersion: string;
  /** EDGE_INSECURE_POLL. */
  insecure: boolean;
  /** The key's environment id (0 for a global key: adopted from the first reply). */
  endpointId: number;
  /** Where the command journal lives. */
  dataPath: string;
  dockerHost: string;
  log: Logger;
  takeSnapshot?: () => Promise<DockerSnapshot>;
  execute?: Execute;
  timing?: SchedulerOptions;
  /** EDGE_PUSH: use the push channel when the server offers it (default off here; `fromConfig` follows the config). */
  push?: boolean;
  /** Push back-off and liveness knobs (tests shorten them). */
  pushTiming?: Pick<PushChannelOptions, 'minBackoffMs' | 'maxBackoffMs' | 'stableMs' | 'deadAfterMs'>;
}

const NS_PER_MS = 1e6;
/** Most acks in one request (a server bounds the list); the rest follow at once. */
export const MAX_ACKS_PER_REQUEST = 500;

/**
 * Async mode (reference 2): the agent never polls and never opens a tunnel; everything goes through
 * `POST /api/endpoints/edge/async` on its timers: snapshots (full, then JSON patches), the command
 * watermark, and Capstan's command acks, which leave the journal only once a 200 confirmed them.
 */
export class AsyncAgent {
  private readonly client: AsyncClient;
  private readonly journal: Journal;
  private readonly differ: SnapshotDiffer;
  private readonly runner: CommandRunner;
  private readonly scheduler: Scheduler;
  private readonly push: PushChannel | undefined;
  private readonly log: Logger;
  private retriedFull = false;
  private stopping = false;

  constructor(opts: AsyncAgentOptions) {
    this.log = opts.log;
    this.client = new AsyncClient({ apiUrl: opts.apiUrl, edgeId: opts.edgeId, agentVersion: opts.agentVersion, insecure: opts.insecure });
    this.journal = Journal.open(opts.dataPath, opts.endpointId, opts.log);
    const get = dockerGetJson(opts.dockerHost);
    this.differ = new SnapshotDiffer(opts.takeSnapshot ?? (() => collectDockerSnapshot(get, (step, err) => this.log.warn({ step }, `snapshot step failed: ${err.message}`))));
    const execute = opts.execute ?? ((cmd) => executeCommand(cmd, { dockerHost: opts.dockerHost }));
    this.runner = new CommandRunner(this.journal, execute, opts.log, () => this.stopping);
    this.scheduler = new Scheduler((flags) => this.exchange(flags), (err) => this.log.error({ err }, `async exchange aborted: ${err.message}`), opts.timing);
    // On the push channel: no ping timer, commands and timer changes come as nudges.
    this.push = opts.push ? new PushChannel({
      apiUrl: opts.apiUrl, edgeId: opts.edgeId, agentVersion: opts.agentVersion, insecure: opts.insecure, log: opts.log, ...opts.pushTiming,
      onStatus: () => undefined,
      onNudge: (kind) => {
        this.log.debug({ kind }, 'push nudge');
        this.scheduler.trigger(kind === 'commands' ? { command: true } : {});
      },
      onUp: () => this.scheduler.setPushed(true),
      onDown: () => {
        this.scheduler.setPushed(false);
        this.scheduler.trigger({ command: true });
      },
    }) : undefined;
  }

  /** Whether the push channel is up. */
  get pushed(): boolean {
    return this.push?.connected ?? false;
  }

  /** The factory `main` uses. */
  static fromConfig(config: AgentConfig, log: Logger): AsyncAgent {
    return new AsyncAgent({
      apiUrl: config.key.apiUrl, edgeId: config.edgeId, agentVersion: config.agentVersion, insecure: config.insecurePoll,
      endpointId: config.key.endpointId, dataPath: config.dataPath, dockerHost: config.dockerHost, log, push: config.push,
    });
  }

  /** The environment id in use (the key's, or the one adopted from the server). */
  get endpointId(): number {
    return this.journal.endpointId;
  }

  /** The timer periods in force, in milliseconds (0 = disabled). */
  get intervals(): Intervals {
    return this.scheduler.current;
  }

  /** First request at once: a full snapshot and the command flag. */
  start(): void {
    if (this.client.plainHttp) this.log.warn('the Edge key points at a plain-HTTP API URL');
    this.log.info({ api: this.client.url, lastSeq: this.journal.lastSeq, pendingAcks: this.journal.pendingAcks.length }, 'async mode: exchanging with the server on its timers');
    this.scheduler.start({ snapshot: true, command: true });
  }

  /** Stops the timers and waits for the exchange in flight (and its current command) to end. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.push?.stop();
    await this.scheduler.stop();
    this.client.close();
  }

  /** Asks for a request now (through the coalescing window). */
  trigger(flags: Flags = {}): void {
    this.scheduler.trigger(flags);
  }

  private async exchange(flags: Flags): Promise<boolean> {
    let prepared: PreparedSnapshot | undefined;
    if (flags.snapshot) {
      try {
        prepared = await this.differ.prepare();
      } catch (err) {
        this.log.warn(`cannot take a Docker snapshot, sending without one: ${(err as Error).message}`);
      }
    }
    const pending = this.journal.pendingAcks; // in seq order
    const acks = pending.slice(0, MAX_ACKS_PER_REQUEST);
    const held = pending.slice(MAX_ACKS_PER_REQUEST);
    // `seq` tells the server every command up to it is handled *and acked here or before*: with
    // acks held back for the next request it must stop short of the first of them.
    const seq = held.length ? Math.min(this.journal.lastSeq, held[0].seq - 1) : this.journal.lastSeq;
    // Portainer's fields first, in its order; Capstan's extension last.
    const body: AsyncRequestBody = {
      ...(this.journal.endpointId ? { endpointId: this.journal.endpointId } : {}),
      ...(flags.command ? { commandTimestamp: this.journal.commandTimestamp } : {}),
      ...(prepared ? { snapshot: prepared.payload } : {}),
      capstan: { seq, acks },
    };
    let res;
    try {
      res = await this.client.send(body);
    } catch (err) {
      this.log.warn(`async exchange failed: ${(err as Error).message}; retrying later`);
      return false;
    }
    if (res.status !== 200 || !('reply' in res)) {
      const msg = 'message' in res ? res.message : '';
      this.log.warn({ status: res.status }, res.status === 403
        ? `the server refused this agent (HTTP 403: ${msg}); if another agent was bound to this environment, an administrator must clear its association`
        : `async exchange failed: HTTP ${res.status}: ${msg}; retrying later`);
      return false;
    }
    const reply = res.reply;
    this.push?.offer(res.push);
    this.journal.removeAcks(acks.map((a) => a.seq));
    this.log.debug({ flags, bytes: res.bytesSent, full: prepared?.full, acks: acks.length, commands: reply.commands?.length ?? 0 }, 'async exchange');
    this.adopt(reply);
    if (reply.needFullSnapshot === true) {
      this.differ.requireFull();
      // Once at once (Portainer's snapshotRetried); a server that keeps asking gets full ones on the timer.
      if (!this.retriedFull) {
        this.retriedFull = true;
        this.scheduler.trigger({ snapshot: true });
      }
    } else {
      this.retriedFull = false;
      if (prepared) this.differ.accept(prepared.snapshot);
    }
    const commands = Array.isArray(reply.commands) ? reply.commands : [];
    const handled = commands.length ? await this.runner.run(commands) : 0;
    // Acks should reach the server fast, and the queue may hold more.
    if (handled > 0 || reply.capstan?.more === true) this.scheduler.trigger({ command: true });
    else if (held.length) this.scheduler.trigger();
    return true;
  }

  private adopt(reply: AsyncResponse): void {
    if (this.journal.endpointId === 0 && Number.isInteger(reply.endpointID) && reply.endpointID! > 0) {
      this.journal.setEndpointId(reply.endpointID!);
      this.log.info({ environment: reply.endpointID }, 'environment id assigned by the server');
    }
    const now = this.scheduler.current;
    const ms = (ns: unknown, current: number) => (typeof ns === 'number' && Number.isFinite(ns) ? ns / NS_PER_MS : current);
    const next = { pingMs: ms(reply.pingInterval, now.pingMs), snapshotMs: ms(reply.snapshotInterval, now.snapshotMs), commandMs: ms(reply.commandInterval, now.commandMs) };
    if (this.scheduler.setIntervals(next)) this.log.info(this.scheduler.current, 'async intervals changed');
  }
}
