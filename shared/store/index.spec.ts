/* eslint-disable @typescript-eslint/no-require-imports */
import os from 'node:os';

/** The embedded default never loads the MongoDB driver; a MongoDB configuration does. */
describe('createStores', () => {
  beforeEach(() => {
    jest.resetModules();
    jest.doMock('mongodb', () => {
      throw new Error('the MongoDB driver was loaded');
    });
  });
  afterEach(() => jest.dontMock('mongodb'));

  it('builds the LMDB stores without loading the MongoDB driver', () => {
    jest.isolateModules(() => {
      const { createStores, LmdbStore } = require('./index') as typeof import('./index');
      const stores = createStores({ dataDir: os.tmpdir(), mongodbUrl: '', mongodbDatabase: 'capstan' });
      expect(stores.main).toBeInstanceOf(LmdbStore);
      expect(stores.audit).toBeInstanceOf(LmdbStore);
    });
  });

  it('loads it for a MongoDB configuration', () => {
    jest.isolateModules(() => {
      const { createStores } = require('./index') as typeof import('./index');
      expect(() => createStores({ dataDir: os.tmpdir(), mongodbUrl: 'mongodb://127.0.0.1:27017/?replicaSet=rs0', mongodbDatabase: 'capstan' }))
        .toThrow('the MongoDB driver was loaded');
    });
  });
});
