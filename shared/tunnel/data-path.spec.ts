import { PassThrough } from 'node:stream';
import { DATA_MAX_LINE, formatPreamble, parsePreamble, readLine } from '.';

const token = 'q4Xb3n0_-Zk8Lw2mR7tYv1sA9dC6eF5gH3jK0lP2oI8';

describe('data listener preamble', () => {
  it('names a tunnel by its virtual port and token, and reads back exactly that', () => {
    expect(formatPreamble(1024, token)).toBe(`CAPSTAN-TUNNEL/1 1024 ${token}\n`);
    expect(parsePreamble(formatPreamble(65535, token).trimEnd())).toEqual({ port: 65535, token });
  });

  it('takes nothing else: another version, a missing or extra field, a token of other characters or length', () => {
    for (const line of [
      `CAPSTAN-TUNNEL/2 1024 ${token}`, `CAPSTAN-TUNNEL/1 ${token}`, `CAPSTAN-TUNNEL/1 1024 ${token} x`, `CAPSTAN-TUNNEL/1 1024  ${token}`,
      `CAPSTAN-TUNNEL/1 -5 ${token}`, `CAPSTAN-TUNNEL/1 123456 ${token}`, 'CAPSTAN-TUNNEL/1 1024 short', `CAPSTAN-TUNNEL/1 1024 ${token}=`,
      `CAPSTAN-TUNNEL/1 1024 ${token}\r`, 'GET / HTTP/1.1', '',
    ]) expect(parsePreamble(line)).toBeUndefined();
  });
});

describe('readLine', () => {
  it('returns the first line and leaves what followed it to the next reader', async () => {
    const stream = new PassThrough();
    stream.write('OK\nfirst bytes ');
    stream.write('and more');
    expect(await readLine(stream)).toBe('OK');
    stream.end();
    const rest: Buffer[] = [];
    for await (const chunk of stream) rest.push(chunk as Buffer);
    expect(Buffer.concat(rest).toString()).toBe('first bytes and more');
  });

  it('assembles a line that arrives in pieces', async () => {
    const stream = new PassThrough();
    const line = readLine(stream);
    for (const piece of ['CAPSTAN', '-TUNNEL/1 2000 ', `${token}\n`]) {
      stream.write(piece);
      await new Promise((r) => setImmediate(r));
    }
    expect(await line).toBe(`CAPSTAN-TUNNEL/1 2000 ${token}`);
  });

  it('gives up on a line longer than the limit, and on an end before the newline', async () => {
    const long = new PassThrough();
    long.write('x'.repeat(DATA_MAX_LINE + 1));
    await expect(readLine(long)).rejects.toThrow(`a line longer than ${DATA_MAX_LINE} bytes`);
    const cut = new PassThrough();
    cut.end('ERR half a li');
    await expect(readLine(cut)).rejects.toThrow('the connection closed before a whole line arrived');
  });
});
