import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import {
  BatchIdParams, call, Command, CommandBatch, CommandQuery, CommandSeqParams, CommandsFanout, CommandsQueueResult, commandView, EnvironmentCommandsCreate, IdParams,
} from '../../../shared/contracts';
import { principalOf } from '../../plugins/auth';
import { errorResponses } from '../../schemas';

const tags = ['commands'];

/**
 * Async commands to Edge agents (environments in async mode): queue for one environment or many,
 * follow each command's status and a batch's counters. Administrators only for now.
 */
const commandRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { broker } = fastify;

  fastify.post('/endpoints/:id/commands', {
    config: { admin: true },
    schema: {
      tags,
      summary: 'Queue commands for an Edge environment in async mode; the agent runs them in this order, each once',
      params: IdParams,
      body: EnvironmentCommandsCreate,
      response: { 201: CommandsQueueResult, ...errorResponses([404]) },
    },
  }, async (request, reply) => {
    const out = await call(broker, 'commands.queue', {
      environmentIds: [request.params.id], commands: request.body.Commands, stopOnFailure: request.body.StopOnFailure, createdBy: principalOf(request).userId,
    });
    return reply.code(201).send(out);
  });

  fastify.post('/commands', {
    config: { admin: true },
    schema: {
      tags,
      summary: 'Queue one command for many Edge environments in async mode (persisted at once, fanned out to their queues in the background)',
      body: CommandsFanout,
      response: { 202: CommandsQueueResult, ...errorResponses() },
    },
  }, async (request, reply) => {
    const out = await call(broker, 'commands.queue', {
      environmentIds: request.body.EnvironmentIds, commands: [request.body.Command], stopOnFailure: request.body.StopOnFailure, createdBy: principalOf(request).userId,
    });
    return reply.code(202).send({ BatchId: out.BatchId, Queued: out.Queued, Deferred: out.Deferred });
  });

  fastify.get('/endpoints/:id/commands', {
    config: { admin: true },
    schema: {
      tags,
      summary: 'An environment\'s commands in seq order, paginated (X-Total-Count); a page of large commands may hold fewer than limit',
      params: IdParams,
      querystring: CommandQuery,
      response: {
        200: { ...Type.Array(Command), headers: { 'X-Total-Count': Type.Integer({ description: 'Commands matching the filter' }) } },
        ...errorResponses([404]),
      },
    },
  }, async (request, reply) => {
    const page = await call(broker, 'state.listCommands', { id: request.params.id, ...request.query });
    reply.header('X-Total-Count', page.total);
    return page.items.map(commandView);
  });

  fastify.get('/endpoints/:id/commands/:seq', {
    config: { admin: true },
    schema: { tags, summary: 'One command of an environment, by seq', params: CommandSeqParams, response: { 200: Command, ...errorResponses([404]) } },
  }, async (request) => commandView(await call(broker, 'state.getCommand', { id: request.params.id, seq: request.params.seq })));

  fastify.get('/commands/batches/:batchId', {
    config: { admin: true },
    schema: {
      tags,
      summary: 'A batch (one queueing request): its commands counted by status, and how many reached the delivery queues',
      params: BatchIdParams,
      response: { 200: CommandBatch, ...errorResponses([404]) },
    },
  }, async (request) => call(broker, 'commands.batch', { batchId: request.params.batchId }));
};

export default commandRoutes;
