import { gatewaysFor, misfit, type HostLimits } from './limits';
import { parseOptions, type LoadTestOptions } from './options';
import { planWorkers } from './workers';

/** This machine: a hard open-file limit of 20,000, ports 32768-60999. */
const HERE: HostLimits = { openFiles: 20_000, sourcePorts: 28_232 };

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

  it('takes a storm of any size its open files allow: tunnels take no port of the machine', () => {
    // Refused before, when each tunnel held a real port of the 4,535 outside the ephemeral range.
    expect(verdict('--agents 5000 --duration 120 --storm 4400')).toBeUndefined();
    expect(verdict('--agents 6000 --duration 120 --storm 6000')).toMatch(/below the 24512 a tester process of this run needs/);
  });
});
