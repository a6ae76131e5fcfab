import { planWorkers } from './workers';

describe('where the agents run', () => {
  it('uses threads while every agent fits in one process', () => {
    expect(planWorkers(15_000, 1)).toEqual({ kind: 'thread', count: 1, perWorker: 15_000 });
    expect(planWorkers(2000, 3)).toEqual({ kind: 'thread', count: 3, perWorker: 667 });
    // Never more workers than agents.
    expect(planWorkers(2, 8)).toEqual({ kind: 'thread', count: 2, perWorker: 1 });
  });

  it('forks enough processes that none holds more than the limit, keeping the threads asked for', () => {
    expect(planWorkers(50_000, 1)).toEqual({ kind: 'process', count: 4, perWorker: 12_500 });
    expect(planWorkers(15_001, 1)).toEqual({ kind: 'process', count: 2, perWorker: 7501 });
    expect(planWorkers(20_000, 5)).toEqual({ kind: 'process', count: 5, perWorker: 4000 });
    expect(planWorkers(30_000, 1, undefined, 10_000)).toEqual({ kind: 'process', count: 3, perWorker: 10_000 });
  });

  it('takes an explicit process count; one process means threads', () => {
    expect(planWorkers(2000, 1, 2)).toEqual({ kind: 'process', count: 2, perWorker: 1000 });
    expect(planWorkers(50_000, 1, 8)).toEqual({ kind: 'process', count: 8, perWorker: 6250 });
    expect(planWorkers(2000, 2, 1)).toEqual({ kind: 'thread', count: 2, perWorker: 1000 });
  });
});
