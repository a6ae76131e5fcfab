import { PORT_MAX, PORT_MIN, TunnelRegistry, tunnelPortRange } from './registry';

describe('tunnel ports', () => {
  it('keeps clear of the kernel\'s ephemeral range', () => {
    expect(tunnelPortRange([32768, 60999])).toEqual({ min: 61000, max: PORT_MAX });
    expect(tunnelPortRange([55000, 65535])).toEqual({ min: PORT_MIN, max: 55000 });
    // Ranges that leave nothing usable, or none known: Portainer's whole range.
    expect(tunnelPortRange([1024, 65535])).toEqual({ min: PORT_MIN, max: PORT_MAX });
    expect(tunnelPortRange(null)).toEqual({ min: PORT_MIN, max: PORT_MAX });
  });

  it('relocates an unconnected tunnel to a fresh port with fresh credentials', async () => {
    const registry = new TunnelRegistry();
    const first = await registry.open(7);
    const moved = await registry.relocate(7);
    expect(moved?.port).not.toBe(first.port);
    expect(moved?.credentials).not.toBe(first.credentials);
    const [user, pass] = first.credentials.split(':');
    expect(registry.login(user, pass)).toBeUndefined();
    const [u2, p2] = moved!.credentials.split(':');
    expect(registry.login(u2, p2)?.port).toBe(moved!.port);
    expect(await registry.relocate(8)).toBeUndefined();
  });
});
