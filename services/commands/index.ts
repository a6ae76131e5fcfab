import type { Context, ServiceSchema } from 'moleculer';
import { Type } from '@sinclair/typebox';
import type { Config } from '../../shared/config';
import {
  AckParams, AckUntilTimestampParams, BatchIdParams, CommandsQueueParams, DeliveredParams, PendingParams,
  type ActionMap,
} from '../../shared/contracts';
import { CommandsRuntime } from './runtime';

export { CommandsUnavailableError } from './runtime';

type Ctx<K extends keyof ActionMap> = Context<ActionMap[K]['params']>;

/**
 * `commands`: async commands to Edge agents, in order, acknowledged. The ledger is state's (it
 * survives any restart, Redis's included); delivery goes through one BullMQ queue per
 * environment on Redis, filled directly or by the fan-out worker, and rebuilt from the ledger
 * whenever Redis comes back. Check-ins read `pending`, then report `delivered` and `ack`.
 */
export function commandsService(config: Config): ServiceSchema {
  let rt: CommandsRuntime;
  return {
    name: 'commands',
    actions: {
      queue: { params: CommandsQueueParams, handler: (ctx: Ctx<'commands.queue'>) => rt.queue(ctx.params) },
      batch: { params: BatchIdParams, handler: (ctx: Ctx<'commands.batch'>) => rt.batch(ctx.params.batchId) },
      pending: { params: PendingParams, handler: (ctx: Ctx<'commands.pending'>) => rt.pending(ctx.params) },
      delivered: { params: DeliveredParams, handler: (ctx: Ctx<'commands.delivered'>) => rt.delivered(ctx.params) },
      ack: { params: AckParams, handler: (ctx: Ctx<'commands.ack'>) => rt.ack(ctx.params) },
      ackUntilTimestamp: { params: AckUntilTimestampParams, handler: (ctx: Ctx<'commands.ackUntilTimestamp'>) => rt.ackUntilTimestamp(ctx.params) },
      reconcile: { params: Type.Object({}), handler: async () => ({ requeued: await rt.reconciler.request() }) },
    },
    created() {
      rt = new CommandsRuntime(this.broker, this.logger, config);
    },
    async started() {
      await rt.start();
    },
    async stopped() {
      await rt.stop();
    },
  };
}
