import { parseOptions, PUSH_RAMP_PER_S, type LoadTestOptions } from './options';

const parse = (args: string) => parseOptions(args.split(' ')) as LoadTestOptions;

describe('push mode options', () => {
  it('ramps at PUSH_RAMP_PER_S agents a second and waits for the channels until 2 minutes after the ramp', () => {
    expect(PUSH_RAMP_PER_S).toBe(250);
    expect(parse('--mode push --agents 2000')).toMatchObject({ rampS: 8, openTimeoutS: 300, pushRequired: undefined });
    expect(parse('--mode push --agents 50000')).toMatchObject({ rampS: 200, openTimeoutS: 320 });
    expect(parse('--mode push --agents 50000 --ramp 400')).toMatchObject({ rampS: 400, openTimeoutS: 520 });
  });

  it('refuses an open timeout that ends before the ramp, and --push-required above the agents or outside push mode', () => {
    expect(() => parse('--mode push --agents 50000 --ramp 400 --open-timeout 300')).toThrow(/--open-timeout \(300 s\) must be longer than the ramp \(400 s\)/);
    expect(parse('--mode push --agents 50000 --open-timeout 600')).toMatchObject({ openTimeoutS: 600 });
    expect(() => parse('--mode push --agents 10 --push-required 11')).toThrow(/cannot exceed --agents/);
    expect(() => parse('--agents 10 --push-required 5')).toThrow(/--push-required is for --mode push/);
  });
});
