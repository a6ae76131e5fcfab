import { encodeEdgeStatus, edgeTypeOfPlatform, etag, fnv1a32, goJson, ifNoneMatchHits, parseIfNoneMatch } from '.';

describe('FNV-1a 32 ETags', () => {
  it('matches the published FNV-1a 32-bit test vectors', () => {
    expect(fnv1a32('').toString(16)).toBe('811c9dc5');
    expect(fnv1a32('a').toString(16)).toBe('e40c292c');
    expect(fnv1a32('foobar').toString(16)).toBe('bf9cf968');
    expect(fnv1a32(Buffer.from('a'))).toBe(fnv1a32('a'));
  });

  it('formats like Go strconv.FormatUint(h, 16): lowercase, unquoted, not zero-padded', () => {
    expect(etag('a')).toBe('e40c292c');
    // Find a body whose hash has a leading zero nibble: Portainer sends fewer than 8 digits then.
    let i = 0;
    while (fnv1a32(String(i)) >= 0x10000000) i++;
    expect(etag(String(i))).toBe(fnv1a32(String(i)).toString(16));
    expect(etag(String(i)).length).toBeLessThan(8);
  });

  it('encodes a poll reply as Go does (key order, trailing newline) and tags those exact bytes', () => {
    const { json, etag: tag } = encodeEdgeStatus({ stacks: [], credentials: '', checkin: 5, schedules: [], port: 0, status: 'IDLE' });
    expect(json).toBe('{"status":"IDLE","port":0,"schedules":[],"checkin":5,"credentials":"","stacks":[]}\n');
    expect(tag).toBe(etag(json));
    expect(JSON.parse(json)).toEqual({ status: 'IDLE', port: 0, schedules: [], checkin: 5, credentials: '', stacks: [] });
  });

  it('escapes HTML characters like Go encoding/json', () => {
    expect(goJson({ s: '<a&b>\u2028' })).toBe('{"s":"\\u003ca\\u0026b\\u003e\\u2028"}');
  });

  it('reads If-None-Match lists as agents send them, at most 8 tags', () => {
    expect(parseIfNoneMatch(undefined)).toEqual([]);
    expect(parseIfNoneMatch('')).toEqual([]);
    expect(parseIfNoneMatch('abc,def')).toEqual(['abc', 'def']);
    expect(parseIfNoneMatch(' "abc" , W/"def",,')).toEqual(['abc', 'def']);
    const many = Array.from({ length: 12 }, (_, i) => `t${i}`).join(',');
    expect(parseIfNoneMatch(many)).toHaveLength(8);
    expect(ifNoneMatchHits(many, 't7')).toBe(true);
    expect(ifNoneMatchHits(many, 't8')).toBe(false);
  });

  it('maps the agent platform header to the Edge environment type', () => {
    expect(edgeTypeOfPlatform('1')).toBe(4);
    expect(edgeTypeOfPlatform('2')).toBe(7);
    for (const bad of [undefined, '', '0', '3', 'docker', '1.0', '-1']) expect(edgeTypeOfPlatform(bad)).toBeUndefined();
  });
});
