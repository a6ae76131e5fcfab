/**
 * The agent's async mode (reference 2, EDGE_ASYNC=1): one HTTPS exchange on timers carrying
 * snapshots, the command watermark and Capstan's command acks; commands run against the local
 * engine through a journal so each sequenced command runs at most once across restarts.
 * @packageDocumentation
 */
export { AsyncAgent, type AsyncAgentOptions } from './async-agent';
export { AsyncClient, ExchangeError, type AsyncClientOptions, type ExchangeResult } from './client';
export { executeCommand, checkDockerPath, RESULT_MAX_BYTES, type CommandOutcome, type ExecutorOptions } from './commands';
export { Journal, writeFileAtomic, JOURNAL_FILE, INTERRUPTED_ERROR, type JournalState } from './journal';
export { CommandRunner, type Execute } from './runner';
export { Scheduler, FALLBACK_PING_MS, PUSHED_COMMAND_MS, type Flags, type Intervals, type SchedulerOptions } from './scheduler';
export { SnapshotDiffer, type PreparedSnapshot } from './snapshots';
export * from './wire';
