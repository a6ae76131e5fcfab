import { generateAgentSigningKey, signAgentRequest } from '../shared/protocol';
import { createSignatureVerifier } from './signature-check';

const headersOf = (pem: string, message?: string) => {
  const s = signAgentRequest(pem, message);
  return { 'x-portaineragent-signature': s.signature, 'x-portaineragent-publickey': s.publicKeyHex };
};

describe('agent signature check', () => {
  const server = generateAgentSigningKey().privateKeyPem;
  const other = generateAgentSigningKey().privateKeyPem;

  it('requires both headers', () => {
    expect(createSignatureVerifier()({})).toBe('Missing request signature headers');
  });

  it('trusts the first valid key and then only that key', () => {
    const verify = createSignatureVerifier();
    expect(verify(headersOf(server))).toBeNull();
    expect(verify(headersOf(server))).toBeNull();
    expect(verify(headersOf(other))).toBe('Invalid request signature');
    expect(verify({ ...headersOf(server), 'x-portaineragent-signature': headersOf(other)['x-portaineragent-signature'] })).toBe('Invalid request signature');
  });

  it('with AGENT_SECRET accepts any key signing the secret, and nothing else', () => {
    const verify = createSignatureVerifier({ secret: 's3cret' });
    expect(verify(headersOf(server, 's3cret'))).toBeNull();
    expect(verify(headersOf(other, 's3cret'))).toBeNull();
    expect(verify(headersOf(server))).toBe('Invalid request signature');
  });
});
