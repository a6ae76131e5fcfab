import { randomBytes } from 'node:crypto';
import { MongoClient } from 'mongodb';
import { MongoStore } from './mongo-store';
import { storeContract } from './store.contract';

// Runs only against a real server: MONGODB_URL must point at a replica set (transactions).
const url = process.env.MONGODB_URL;
const d = url ? describe : describe.skip;

d('MongoStore', () => {
  // One database per store, unique per run so parallel runs and reruns never share data.
  const prefix = `capstan_test_${process.pid}_${randomBytes(3).toString('hex')}`;
  const databases: string[] = [];

  storeContract(
    'MongoStore',
    async () => {
      const database = `${prefix}_${databases.length}`;
      databases.push(database);
      return new MongoStore({ url: url!, database });
    },
    async () => {
      const client = new MongoClient(url!);
      try {
        for (const database of databases) await client.db(database).dropDatabase();
      } finally {
        await client.close();
      }
    },
  );
});
