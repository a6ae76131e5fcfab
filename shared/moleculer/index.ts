export { createBroker } from './broker';
export { TypeBoxValidator } from './validator';
