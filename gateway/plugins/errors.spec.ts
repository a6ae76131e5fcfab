import { Errors } from 'moleculer';
import { BadRequestError, ConflictError, LeaderUnavailableError, StoreVersionError } from '../../shared/errors';
import { toHttpError } from './errors';

describe('toHttpError', () => {
  it('keeps the status, message and details of client AppErrors', () => {
    expect(toHttpError(new ConflictError('Name taken', { Name: 'x' }), 'r1')).toEqual({ status: 409, body: { message: 'Name taken', details: { Name: 'x' } }, internal: false });
    expect(toHttpError(new BadRequestError('Bad'), 'r1').body).toEqual({ message: 'Bad', details: null });
  });

  it('hides 5xx errors behind the request id', () => {
    expect(toHttpError(new StoreVersionError('written by v9 at /data/x'), 'r2')).toEqual({ status: 500, body: { message: 'Internal server error', details: 'r2' }, internal: true });
    expect(toHttpError(new TypeError("Cannot read properties of undefined (reading 'x')"), 'r3')).toEqual({ status: 500, body: { message: 'Internal server error', details: 'r3' }, internal: true });
    expect(toHttpError('a string', 'r4').status).toBe(500);
    expect(toHttpError(undefined, 'r5').status).toBe(500);
    expect(toHttpError({ code: 'ECONNRESET', message: 'socket hang up' }, 'r6').body.message).toBe('Internal server error');
  });

  it('turns transient broker failures into 503 with Retry-After', () => {
    for (const err of [
      new Errors.RequestTimeoutError({ action: 'state.getEnvironment', nodeID: 'n1' }),
      new Errors.ServiceNotAvailableError({ action: 'state.getEnvironment', nodeID: 'n1' }),
      new Errors.ServiceNotFoundError({ action: 'rbac.authenticate' }),
      new LeaderUnavailableError(),
    ]) {
      const out = toHttpError(err, 'r');
      expect(out.status).toBe(503);
      expect(out.headers).toEqual({ 'retry-after': '1' });
      expect(out.body.message).toMatch(/retry/i);
    }
  });

  it('turns Moleculer validation errors into 400 without echoing the rejected values', () => {
    const err = new Errors.ValidationError('Parameters validation error!', 'VALIDATION_ERROR', [{ type: 'invalid', field: '/Password', message: 'too long', actual: 'hunter2-secret' }]);
    const out = toHttpError(err, 'r');
    expect(out).toEqual({ status: 400, body: { message: 'Invalid request', details: [{ path: '/Password', message: 'too long' }] }, internal: false });
    expect(JSON.stringify(out)).not.toContain('hunter2');
  });

  it('maps fastify request errors', () => {
    const validation = Object.assign(new Error('body/Name Expected string'), { statusCode: 400, validation: [{ instancePath: '/Name', message: 'Expected string' }], validationContext: 'body' });
    expect(toHttpError(validation, 'r')).toEqual({ status: 400, body: { message: 'Invalid request', details: [{ location: 'body', path: '/Name', message: 'Expected string' }] }, internal: false });
    expect(toHttpError(Object.assign(new Error('Request body is too large'), { statusCode: 413, code: 'FST_ERR_CTP_BODY_TOO_LARGE' }), 'r').status).toBe(413);
    expect(toHttpError(Object.assign(new Error('Unsupported Media Type'), { statusCode: 415, code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE' }), 'r').body.message).toBe('Unsupported media type');
    expect(toHttpError(Object.assign(new SyntaxError('Unexpected token'), { statusCode: 400 }), 'r').body.message).toBe('Invalid JSON body');
  });
});
