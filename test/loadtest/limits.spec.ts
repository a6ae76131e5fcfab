import { gatewaysFor, misfit, pushRequiredFor, type HostLimits } from './limits';
import { parseOptions, type LoadTestOptions } from './options';
import { planWorkers } from './workers';

/** This machine: a hard open-file limit of 20,000, ports 32768-60999, tunnel ports 61000-65534. */
const HERE: HostLimits = { openFiles: 20_000, sourcePorts: 28_232, tunnelPorts: 4535 };

const opts = (args: string): LoadTestOptions => parseOptions(args.split(' ')) as LoadTestOptions;
const verdict = (args: string, l = HERE) => {
  const o = opts(args);
  return misfit(o, planWorkers(o.agents, o.workers, o.processes), l);
};

describe('whether a run fits the machine', () => {
  it('takes 50,000 push agents over 4 gateways: 12,500 sockets and source ports each, 4 tester processes', () => {
    expect(verdict('--mode push --agents 50000 --shape distributed --gateways 4')).toBeUndefined();
    expect(planWorkers(50_000, 1)).toEqual({ kind: 'process', count: 4, perWorker: 12_500 });
  });

  it('names the gateways to use when one gateway would need more open files than the limit', () => {
    expect(verdict('--mode push --agents 50000 --shape distributed --gateways 2')).toMatch(/about 26000 open files in each, above the open-file limit of 20000: use --gateways 4$/);
    expect(verdict('--agents 25000')).toMatch(/embedded server is one process.*--shape distributed --gateways 2$/);
  });

  it('refuses more agents towards one port than there are source ports, when open files are no limit', () => {
    const roomy: HostLimits = { ...HERE, openFiles: 1_000_000 };
    expect(verdict('--mode push --agents 60000 --shape distributed --gateways 2', roomy)).toMatch(/need 30000 \(\+1000 spare\) towards each, more than the 28232 .*: use --shape distributed --gateways 4$/);
    expect(verdict('--agents 30000 --target https://10.0.0.5:9443 --api-key k', roomy)).toMatch(/one address of https:\/\/10\.0\.0\.5:9443.*run fewer agents/);
    expect(verdict('--mode push --agents 50000 --shape distributed --gateways 2', roomy)).toBeUndefined();
    expect(gatewaysFor(50_000, roomy)).toBe(4);
    expect(gatewaysFor(100_000, { ...roomy, sourcePorts: 10_000 })).toBe(12);
  });

  it('refuses a tester process whose agents do not fit its open-file limit', () => {
    expect(verdict('--agents 15000 --processes 1', { ...HERE, openFiles: 10_000 })).toMatch(/open-file limit is 10000, below the 15512/);
  });

  it('refuses a storm larger than the tunnel ports of the server it starts', () => {
    expect(verdict('--agents 5000 --duration 120 --storm 4400')).toMatch(/--storm 4279 at most/);
    expect(verdict('--agents 5000 --duration 120 --storm 4000')).toBeUndefined();
  });
});

describe('environments made REQUIRED at once', () => {
  it('takes every agent by default, up to the tunnels the started server can hold', () => {
    expect(pushRequiredFor(opts('--mode push --agents 2000'), HERE)).toEqual({ n: 2000 });
    const capped = pushRequiredFor(opts('--mode push --agents 50000 --shape distributed --gateways 4'), HERE);
    expect(capped.n).toBe(4279);
    expect(capped.note).toMatch(/^4279 of the 50000 environments/);
  });

  it('keeps an explicit count, warning about the calls that cannot get a tunnel port, and trusts a --target', () => {
    const asked = pushRequiredFor(opts('--mode push --agents 50000 --shape distributed --gateways 4 --push-required 6000'), HERE);
    expect(asked).toEqual({ n: 6000, note: expect.stringMatching(/about 1721 of the calls will fail/) });
    expect(pushRequiredFor(opts('--mode push --agents 10000 --push-required 0'), HERE)).toEqual({ n: 0 });
    expect(pushRequiredFor(opts('--mode push --agents 9000 --target https://10.0.0.5:9443 --api-key k'), HERE)).toEqual({ n: 9000 });
  });
});
