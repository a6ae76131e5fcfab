export * from './common';
export * from './environments';
export * from './groups-tags';
export * from './settings';
export * from './users';
export * from './system';
export * from './actions';
export * from './edge';
