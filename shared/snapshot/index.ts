/**
 * Docker snapshots (reference 5): taken by the server through a tunnel in standard mode and by
 * the agent itself in async mode, from the same collector.
 * @packageDocumentation
 */
export * from './docker';
