import type { ServiceBroker } from 'moleculer';
import type { Environment } from '../../../shared/contracts';
import { withLiveHeartbeats } from './live-status';

const now = Math.floor(Date.now() / 1000);
const env = (over: Partial<Environment>): Environment => ({
  Id: 1, Name: 'e', Type: 4, URL: '', PublicURL: '', GroupId: 1, TagIds: [], Status: 2, EdgeID: 'a', EdgeKey: '', EdgeCheckinInterval: 0,
  UserTrusted: true, LastCheckInDate: 0, Heartbeat: false, ContainerEngine: 'docker', Agent: { Version: '' },
  Edge: { AsyncMode: false, PingInterval: 0, SnapshotInterval: 0, CommandInterval: 0 },
  UserAccessPolicies: {}, TeamAccessPolicies: {}, Snapshots: [], CreationDate: 0, ...over,
});

function fakeBroker(answer: (ids: number[]) => Promise<unknown>) {
  const calls: number[][] = [];
  const broker = {
    logger: { debug: () => undefined },
    call: (_action: string, p: { ids: number[] }) => {
      calls.push(p.ids);
      return answer(p.ids);
    },
  } as unknown as ServiceBroker;
  return { broker, calls };
}

describe('withLiveHeartbeats', () => {
  it('takes the newer of stored and live check-ins and recomputes Heartbeat/Status with 2 × interval + 20 s', async () => {
    const { broker, calls } = fakeBroker(async () => ({
      items: [
        { id: 1, lastCheckIn: now - 1, checkinInterval: 5 },
        { id: 2, lastCheckIn: now - 100, checkinInterval: 5 },
        { id: 3, lastCheckIn: now - 50, checkinInterval: 60 },
      ],
    }));
    const out = await withLiveHeartbeats(broker, [
      env({ Id: 1 }),
      env({ Id: 2, LastCheckInDate: now - 200 }),
      env({ Id: 3, LastCheckInDate: now - 10, Status: 1, Heartbeat: true }),
      env({ Id: 4, Type: 1, Status: 1 }),
    ]);
    expect(calls).toEqual([[1, 2, 3]]);
    expect(out.map((e) => [e.Id, e.LastCheckInDate, e.Heartbeat, e.Status])).toEqual([
      [1, now - 1, true, 1],
      [2, now - 100, false, 2],
      [3, now - 10, true, 1],
      [4, 0, false, 1],
    ]);
  });

  it('shows the stored view when polling does not answer, and asks nothing for lists without Edge environments', async () => {
    const failing = fakeBroker(async () => {
      throw new Error('Service not found');
    });
    const stored = env({ Id: 1, LastCheckInDate: now - 3, Heartbeat: true, Status: 1 });
    expect(await withLiveHeartbeats(failing.broker, [stored])).toEqual([stored]);
    const none = fakeBroker(async () => ({ items: [] }));
    await withLiveHeartbeats(none.broker, [env({ Type: 2 }), env({ Edge: { AsyncMode: true, PingInterval: 0, SnapshotInterval: 0, CommandInterval: 0 } })]);
    expect(none.calls).toEqual([]);
  });
});
