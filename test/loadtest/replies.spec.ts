import type { RawResponse } from './http1';
import { parsePushMessage, ReplyCache } from './replies';

const reply = (status: number, etag: string | undefined, body = ''): RawResponse => ({ status, etag, close: false, body: Buffer.from(body), bytes: 0 });

describe('reply cache', () => {
  it('reads a 200, stands a 304 for the reply its ETag matched, and keeps the last 8', () => {
    const c = new ReplyCache();
    expect(c.read(reply(200, 'e0', '{"status":"REQUIRED","port":49153,"credentials":"abc","checkin":5}'))).toEqual({ status: 'REQUIRED', port: 49153, credentials: 'abc' });
    expect(c.read(reply(304, 'e0'))).toEqual({ status: 'REQUIRED', port: 49153, credentials: 'abc' });
    expect(c.read(reply(304, 'unknown'))).toBeUndefined();
    expect(c.read(reply(503, 'e0', '{}'))).toBeUndefined();
    expect(c.read(reply(200, 'bad', 'not json'))).toBeUndefined();
    // A pushed reply is found by a later 304; the oldest of more than 8 is forgotten.
    for (let i = 1; i <= 8; i++) c.remember(`p${i}`, { status: 'IDLE', port: 0, credentials: '' });
    expect(c.read(reply(304, 'p1'))).toEqual({ status: 'IDLE', port: 0, credentials: '' });
    expect(c.read(reply(304, 'e0'))).toBeUndefined();
  });
});

describe('push messages', () => {
  it('reads a status with its reply fields, other types by name, and anything else as unreadable', () => {
    const status = '{"type":"status","etag":"9d4a1f3c","body":{"status":"REQUIRED","port":49153,"schedules":[],"checkin":5,"credentials":"abc","stacks":[]}}';
    expect(parsePushMessage(status)).toEqual({ type: 'status', status: { status: 'REQUIRED', credentials: 'abc', checkin: 5, etag: '9d4a1f3c' } });
    expect(parsePushMessage('{"type":"commands"}')).toEqual({ type: 'commands' });
    expect(parsePushMessage('{"type":"future-thing","x":1}')).toEqual({ type: 'future-thing' });
    expect(parsePushMessage('{"type":"status"}')).toEqual({ type: 'unreadable' });
    expect(parsePushMessage('not json')).toEqual({ type: 'unreadable' });
    expect(parsePushMessage('[1]')).toEqual({ type: 'unreadable' });
  });
});
