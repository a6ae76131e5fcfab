import type { Context, ServiceSchema } from 'moleculer';
import { Type } from '@sinclair/typebox';
import type { Config } from '../../shared/config';
import type { LeaderInfo } from '../../shared/contracts';
import { FencedError, LeaderUnavailableError } from '../../shared/errors';
import { assertSchemaSupported, createStores } from '../../shared/store';
import { claimLeadership } from './bootstrap';
import { LocalElection, RedisElection, type Election } from './election';
import { LEADER_ACTIONS } from './actions';
import type { Leading } from './actions/context';
import { announceChange } from './actions/edge';
import { pruneSessions } from './actions/users';

/** How long a request waits for a claim in progress before answering "retry". */
const CLAIM_WAIT_MS = 3000;
/** Marks a call a follower forwarded, so a stale leader never forwards it again. */
const FORWARDED = 'x-capstan-state-forwarded';

/**
 * `state`: the only writer of the stores. Replicas elect a leader; the leader serves every action
 * from its in-memory view and commits under its fencing token; followers forward each call to the
 * leader they know of, or answer a retryable LEADER_UNAVAILABLE during an election gap.
 */
export function stateService(config: Config): ServiceSchema {
  const stores = createStores(config);
  const election: Election = config.election === 'redis'
    ? new RedisElection({ redisUrl: config.redisUrl, namespace: config.namespace, nodeID: config.nodeID, ttlMs: config.leaseTtlMs })
    : new LocalElection(config.nodeID);
  let leading: Leading | null = null;
  let claiming: Promise<Leading | null> | null = null;
  let pruneTimer: NodeJS.Timeout | undefined;

  async function leaderView(): Promise<Leading | null> {
    if (!election.isLeader()) return null;
    if (leading) return leading;
    if (!claiming) return null;
    const timeout = new Promise<null>((r) => setTimeout(() => r(null), CLAIM_WAIT_MS).unref());
    const l = await Promise.race([claiming, timeout]);
    return election.isLeader() ? l : null;
  }

  const actions: ServiceSchema['actions'] = {
    leader: {
      params: Type.Object({}),
      handler(): LeaderInfo {
        return { nodeID: config.nodeID, isLeader: election.isLeader() && !!leading, leaderNodeID: election.leaderNodeID(), fence: leading?.repo.fence ?? 0 };
      },
    },
  };
  for (const [name, def] of Object.entries(LEADER_ACTIONS)) {
    actions[name] = {
      params: def.params,
      async handler(this: any, ctx: Context<any>) {
        const l = await leaderView();
        if (l) {
          // The lease can lapse while the handler awaits; the store's fence check is the real guard.
          const out = await (def.run as (l: Leading, p: unknown) => unknown)(l, ctx.params);
          await announceChange(ctx, l, name, ctx.params, out);
          return out;
        }
        const leader = election.leaderNodeID();
        // A header, not meta: meta flows back into the caller's context and on into its later calls.
        if (ctx.headers?.[FORWARDED] || !leader || leader === config.nodeID) {
          throw new LeaderUnavailableError(undefined, { nodeID: config.nodeID, knownLeader: leader });
        }
        return ctx.call(ctx.action!.name!, ctx.params, { nodeID: leader, headers: { [FORWARDED]: '1' } });
      },
    };
  }

  return {
    name: 'state',
    actions,
    async started() {
      const log = this.logger;
      await stores.main.open();
      await stores.audit.open();
      // Refuse a store from a newer Capstan before taking part in any election.
      await assertSchemaSupported(stores.main);
      await assertSchemaSupported(stores.audit);
      const onFenced = (err: Error) => {
        log.error({ err: err.message }, 'fenced by a newer leader: stepping down');
        leading = null;
        void election.stop().then(() => election.start()).catch((e) => log.error({ err: e }, 'election restart failed'));
      };
      election.on('elected', () => {
        claiming = claimLeadership(config, stores.main, stores.audit, onFenced).then((l) => {
          if (!election.isLeader()) return null;
          leading = l;
          log.info({ fence: l.repo.fence, migrated: l.migrated }, 'state leader: serving');
          void this.broker.broadcast('state.leaderElected', { nodeID: config.nodeID, fence: l.repo.fence });
          return l;
        }, (err) => {
          log.error({ err }, 'state leader claim failed; resigning');
          void election.stop().then(() => new Promise((r) => setTimeout(r, 1000))).then(() => election.start()).catch(() => undefined);
          return null;
        });
      });
      election.on('deposed', (reason: string) => {
        if (leading) log[reason === 'stopped' ? 'info' : 'warn']({ reason }, 'state leader deposed: writes stop now');
        leading = null;
        claiming = null;
      });
      election.on('warning', (err: Error) => log.debug({ err: err.message }, 'election backend error'));
      await election.start();
      // When this replica wins at once (always so in the embedded shape), be ready before `started` resolves.
      if (claiming) await claiming;
      pruneTimer = setInterval(() => {
        if (leading) pruneSessions(leading).catch((err) => { if (!(err instanceof FencedError)) log.warn({ err }, 'session pruning failed'); });
      }, 10 * 60_000);
      pruneTimer.unref();
    },
    async stopped() {
      clearInterval(pruneTimer);
      await election.stop();
      await stores.main.close();
      await stores.audit.close();
    },
  };
}
