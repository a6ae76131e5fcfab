import { VIRTUAL_PORT_MAX, VIRTUAL_PORT_MIN } from '../../shared/tunnel';
import { TunnelCapacityError, TunnelRegistry, VIRTUAL_PORTS, sameSecret } from './registry';

describe('virtual tunnel ports', () => {
  it('gives every live tunnel its own port of [1024, 65535], all 64,512 of them, and refuses one more until a tunnel is removed', () => {
    const registry = new TunnelRegistry();
    const ports = new Set<number>();
    for (let id = 1; id <= VIRTUAL_PORTS; id++) ports.add(registry.open(id).port);
    expect(VIRTUAL_PORTS).toBe(64_512);
    expect(ports.size).toBe(VIRTUAL_PORTS);
    expect(Math.min(...ports)).toBe(VIRTUAL_PORT_MIN);
    expect(Math.max(...ports)).toBe(VIRTUAL_PORT_MAX);
    expect(() => registry.open(VIRTUAL_PORTS + 1)).toThrow(TunnelCapacityError);
    // The same environment keeps its tunnel and port.
    expect(registry.open(7).port).toBe(registry.status(7).port);
    const freed = registry.remove(7)!.port;
    expect(registry.open(VIRTUAL_PORTS + 1).port).toBe(freed);
  });

  it('issues a token per tunnel that opens nothing while no agent is connected, nor for another port', () => {
    const registry = new TunnelRegistry();
    const { port } = registry.open(1);
    const route = registry.route(1)!;
    expect(route.port).toBe(port);
    expect(route.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(registry.route(2)).toBeUndefined();
    expect(registry.open(2)).not.toMatchObject({ port });
    expect(registry.route(2)!.token).not.toBe(route.token);
    // Nothing is connected yet: even the right token is refused.
    expect(registry.authorize(port, route.token)).toBeUndefined();
    expect(registry.authorize(registry.route(2)!.port, route.token)).toBeUndefined();
    // A new tunnel for the same environment gets another token.
    registry.remove(1);
    registry.open(1);
    expect(registry.route(1)!.token).not.toBe(route.token);
  });

  it('compares secrets of any length without throwing', () => {
    expect(sameSecret('abc', 'abc')).toBe(true);
    expect(sameSecret('abc', 'abd')).toBe(false);
    expect(sameSecret('abc', 'abcd')).toBe(false);
    expect(sameSecret('', 'x')).toBe(false);
  });

  it('spends credentials at the first login and replaces them once that agent is gone', () => {
    const registry = new TunnelRegistry();
    const first = registry.open(3);
    const [user, pass] = first.credentials.split(':');
    expect(registry.login(user, 'wrongpwd')).toBeUndefined();
    expect(registry.login(user, pass)?.port).toBe(first.port);
    expect(registry.login(user, pass)).toBeUndefined();
    const again = registry.open(3);
    expect(again.port).toBe(first.port);
    expect(again.credentials).not.toBe(first.credentials);
  });
});
