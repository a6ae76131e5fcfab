/**
 * The tunnel's SSH runs on ssh2's native crypto binding: without it (built for another Node ABI,
 * say) ssh2 falls back to a JS path that creates a cipher per packet and halves tunnel throughput.
 * infra/ensure-native.sh, run by `npm test` and `npm start`, rebuilds it for the pinned Node.
 */
describe('ssh2 native crypto', () => {
  it('loads on the pinned Node', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const crypto = require('ssh2/lib/protocol/crypto.js') as { bindingAvailable: boolean };
    expect({ node: process.versions.node, bindingAvailable: crypto.bindingAvailable }).toEqual({ node: process.versions.node, bindingAvailable: true });
  });
});
