import { Type } from '@sinclair/typebox';
import { EnvironmentQuery, IdParams, SettingsUpdate } from '../shared/contracts';
import { typeboxValidatorCompiler } from './validation';

const compile = (schema: Parameters<typeof typeboxValidatorCompiler>[0]['schema'], httpPart: string) =>
  typeboxValidatorCompiler({ schema, httpPart, method: 'GET', url: '/x' }) as (v: unknown) => { value?: unknown; error?: unknown[] };

describe('typeboxValidatorCompiler', () => {
  it('converts only well-formed integer path values', () => {
    const params = compile(IdParams, 'params');
    expect(params({ id: '12' })).toEqual({ value: { id: 12 } });
    for (const bad of ['1.5', '1e3', '0x10', ' 1', 'true', '-1', '0', '99999999999999999999', '../../etc/passwd', '\u0000', '']) {
      expect({ bad, result: params({ id: bad }).error ? 'rejected' : 'accepted' }).toEqual({ bad, result: 'rejected' });
    }
  });

  it('drops unknown query parameters and converts known ones', () => {
    const query = compile(EnvironmentQuery, 'querystring');
    expect(query({ start: '0', limit: '10', edgeAsync: 'false', 'x-api-key': 'secret', tagsPartialMatch: 'true' })).toEqual({ value: { start: 0, limit: 10, edgeAsync: false } });
    expect(query({ limit: ['1', '2'] }).error).toBeDefined();
    expect(query({ sort: 'Bogus' }).error).toBeDefined();
  });

  it('checks bodies strictly but drops unknown properties', () => {
    const body = compile(SettingsUpdate, 'body');
    expect(body({ EdgeAgentCheckinInterval: 10, Unknown: 1 })).toEqual({ value: { EdgeAgentCheckinInterval: 10 } });
    expect(body({ EdgeAgentCheckinInterval: '10' }).error).toBeDefined();
    expect(body([]).error).toBeDefined();
    expect(body(null).error).toBeDefined();
  });

  it('reports problems instead of throwing on pathological input', () => {
    const body = compile(Type.Object({ a: Type.Array(Type.Any()) }), 'body');
    let nested: unknown = [];
    for (let i = 0; i < 100_000; i++) nested = [nested];
    const result = body({ a: nested });
    expect(result.value ?? result.error).toBeDefined();
  });
});
