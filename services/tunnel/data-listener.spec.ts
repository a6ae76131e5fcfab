import type os from 'node:os';
import { advertisedHost } from './data-listener';

const nic = (address: string, family: 'IPv4' | 'IPv6', internal: boolean) =>
  ({ address, family, internal, netmask: '', mac: '', cidr: null }) as os.NetworkInterfaceInfo;

describe('the data listener\'s advertised host', () => {
  const pod = { lo: [nic('127.0.0.1', 'IPv4', true)], eth0: [nic('fe80::1', 'IPv6', false), nic('10.42.0.17', 'IPv4', false)] };

  it('is CAPSTAN_TUNNEL_DATA_ADVERTISE when set, else the address it is bound to', () => {
    expect(advertisedHost('tunnel', '0.0.0.0', pod)).toBe('tunnel');
    expect(advertisedHost('', '127.0.0.1', pod)).toBe('127.0.0.1');
    expect(advertisedHost('', '10.42.0.17', pod)).toBe('10.42.0.17');
  });

  it('for a wildcard bind, is the first external IPv4 address (a pod\'s or a container\'s own)', () => {
    expect(advertisedHost('', '0.0.0.0', pod)).toBe('10.42.0.17');
    expect(advertisedHost('', '::', pod)).toBe('10.42.0.17');
  });
});
