export * from './edge-key';
