import { TypeCompiler } from '@sinclair/typebox/compiler';
import { CommandSpec, specProblem, toCommandInput } from './commands';

const check = TypeCompiler.Compile(CommandSpec);
const req = (Path: string, Body?: unknown): CommandSpec => ({ Type: 'dockerRequest', Method: 'GET', Path, ...(Body !== undefined ? { Body } : {}) });

describe('command specs', () => {
  it('maps specs to Portainer types and value objects', () => {
    expect(toCommandInput({ Type: 'container', ContainerName: 'web', ContainerOperation: 'delete', ContainerRemoveOptions: { Force: true } })).toEqual({
      type: 'container',
      value: { ContainerName: 'web', ContainerOperation: 'delete', ContainerStartOptions: { CheckpointID: '', CheckpointDir: '' }, ContainerRemoveOptions: { RemoveVolumes: false, RemoveLinks: false, Force: true } },
    });
    expect(toCommandInput({ Type: 'volume', VolumeName: 'v', VolumeOperation: 'delete' })).toEqual({ type: 'volume', value: { VolumeName: 'v', ForceRemove: false, VolumeOperation: 'delete' } });
    expect(toCommandInput(req('/info'))).toEqual({ type: 'dockerRequest', value: { Method: 'GET', Path: '/info', Query: {} } });
  });

  it('refuses paths that climb, hide a query or are not absolute, and bodies over 1 MiB', () => {
    for (const ok of ['/info', '/v1.41/containers/json', '/containers/a..b/json', '/images/registry.example.com:5000/app:1.0/json']) {
      expect(check.Check(req(ok))).toBe(true);
      expect(specProblem(req(ok))).toBeNull();
    }
    for (const climbing of ['/../etc', '/containers/..', '/a/./b', '/a/%2e%2E/b', '/a/%2e']) {
      expect(check.Check(req(climbing)) && specProblem(req(climbing)) === null).toBe(false);
    }
    for (const bad of ['info', '/x?all=1', '/x#y', '/a b', '/\u0000']) expect(check.Check(req(bad))).toBe(false);
    expect(specProblem(req('/x', { blob: 'x'.repeat(1024 * 1024) }))).toMatch(/at most 1048576/);
    expect(specProblem(req('/x', { blob: 'x'.repeat(1000) }))).toBeNull();
  });
});
