import type { Context, ServiceSchema } from 'moleculer';
import { Type } from '@sinclair/typebox';
import type { Config } from '../../shared/config';
import {
  AsyncExchangeParams, CheckinBatchParams, CheckinParams, EdgeEvents, EnvironmentChanged, HeartbeatsParams, PushIdsParams, PushOpenParams, SetTunnelParams, SettingsChanged,
  TunnelChanged, type ActionMap,
} from '../../shared/contracts';
import { PollingRuntime } from './runtime';

type Ctx<K extends keyof ActionMap> = Context<ActionMap[K]['params']>;

/**
 * `polling`: Edge agent check-ins (standard mode), answered from memory. Each replica keeps every
 * Edge environment's binding, heartbeat, cached reply and ETag, and tunnel flag; it is seeded from
 * state at start and kept current by `environment.changed` / `settings.changed`. The only write a
 * check-in can cause is the first binding of an Edge ID; heartbeats reach state in batches.
 */
export function pollingService(_config: Config): ServiceSchema {
  let rt: PollingRuntime;
  return {
    name: 'polling',
    dependencies: ['state'],
    actions: {
      /** One agent poll: `{status, etag, body?}` for the gateway to send as is. */
      checkin: {
        params: CheckinParams,
        handler: (ctx: Ctx<'polling.checkin'>) => {
          rt.assertReady();
          return rt.checkins.checkin(ctx.params);
        },
      },
      /**
       * Many check-ins in one call, from a gateway whose polling is in another process: one
       * transporter round trip instead of one per check-in. Each item fails or waits on its own.
       */
      checkinBatch: {
        params: CheckinBatchParams,
        handler: async (ctx: Ctx<'polling.checkinBatch'>) => {
          rt.assertReady();
          const regenerator = ctx.broker.errorRegenerator!;
          const items = await rt.checkins.batch(ctx.params.items, (err) => regenerator.extractPlainError(err), ctx.params.wait);
          return { node: ctx.broker.nodeID, items };
        },
      },
      /** `POST /api/endpoints/edge/async`: one exchange with an async agent. */
      asyncExchange: {
        params: AsyncExchangeParams,
        handler: (ctx: Ctx<'polling.asyncExchange'>) => {
          rt.assertReady();
          return rt.async.exchange(ctx.params);
        },
      },
      /** Called by the tunnel service: the reply says REQUIRED (port, encrypted credentials) or IDLE. */
      setTunnel: {
        params: SetTunnelParams,
        handler: (ctx: Ctx<'polling.setTunnel'>) => rt.setTunnel(ctx, ctx.params),
      },
      /** A gateway accepts a push connection: admitted like a check-in; the current reply (standard). */
      pushOpen: {
        params: PushOpenParams,
        handler: (ctx: Ctx<'polling.pushOpen'>) => rt.pushOpen(ctx.params),
      },
      /** A gateway's live push connections (every few seconds): their heartbeats. */
      pushAlive: {
        params: PushIdsParams,
        handler: (ctx: Ctx<'polling.pushAlive'>) => rt.pushAlive(ctx.params.ids),
      },
      pushClosed: {
        params: PushIdsParams,
        handler: (ctx: Ctx<'polling.pushClosed'>) => rt.pushClosed(ctx.params.ids),
      },
      /** Live last check-ins for environment lists (between two heartbeat flushes). */
      heartbeats: {
        params: HeartbeatsParams,
        handler: (ctx: Ctx<'polling.heartbeats'>) => rt.heartbeats(ctx.params.ids),
      },
    },
    events: {
      [EdgeEvents.environmentChanged]: {
        params: EnvironmentChanged,
        handler: (ctx: Context<EnvironmentChanged>) => rt.onEnvironmentChanged(ctx.params),
      },
      [EdgeEvents.settingsChanged]: {
        params: SettingsChanged,
        handler: (ctx: Context<SettingsChanged>) => rt.onSettingsChanged(ctx.params),
      },
      [EdgeEvents.tunnelChanged]: {
        params: TunnelChanged,
        handler: (ctx: Context<TunnelChanged>) => rt.onTunnelChanged(ctx.params),
      },
      // A new leader: changes committed just before the old one died may never have been announced.
      'state.leaderElected': {
        params: Type.Object({ nodeID: Type.String(), fence: Type.Integer() }),
        handler: () => void rt.seed().catch((err: Error) => rt.log.warn({ err: err.message }, 'polling: re-seeding failed')),
      },
    },
    created() {
      rt = new PollingRuntime(this.broker, this.logger);
    },
    async started() {
      await rt.start();
    },
    async stopped() {
      await rt.stop();
    },
  };
}
