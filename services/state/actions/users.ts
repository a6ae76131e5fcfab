import { Role, type ApiKeyRecord, type Session, type UserRecord } from '../../../shared/contracts';
import { ConflictError, NotFoundError } from '../../../shared/errors';
import type { WriteOp } from '../../../shared/store';
import { RESERVED } from '../repository';
import { now, type Leading } from './context';

export function adminExists(l: Leading): boolean {
  for (const u of l.repo.values<UserRecord>('users')) if (u.Role === Role.Admin) return true;
  return false;
}

async function insertUser(l: Leading, p: { Username: string; PasswordHash: string; Role: number }, onlyIfNoAdmin: boolean): Promise<UserRecord> {
  const username = p.Username.trim();
  // The admin-init token serialises concurrent first-admin requests: exactly one can win.
  const tokens = [`users:name:${username.toLowerCase()}`, ...(onlyIfNoAdmin ? ['users:admin-init'] : [])];
  const out = await l.repo.reserve(tokens, async () => {
    if (onlyIfNoAdmin && adminExists(l)) throw new ConflictError('An administrator user already exists');
    if (l.repo.findKey('users', 'Username', username) !== undefined) throw new ConflictError('Another user with the same username already exists', { Username: username });
    const { id, op } = l.repo.nextId('users');
    const user: UserRecord = { Id: id, Username: username, Role: p.Role, CreationDate: now(), PasswordHash: p.PasswordHash };
    await l.repo.commit([op, { op: 'put', collection: 'users', key: id, value: user }]);
    return user;
  });
  if (out === RESERVED) throw new ConflictError(onlyIfNoAdmin ? 'An administrator user is being created' : 'A user with the same username is being created', { Username: username });
  return out;
}

export const initAdmin = (l: Leading, p: { Username: string; PasswordHash: string }) => insertUser(l, { ...p, Role: Role.Admin }, true);
export const createUser = (l: Leading, p: { Username: string; PasswordHash: string; Role: number }) => insertUser(l, p, false);

export function getUser(l: Leading, id: number): UserRecord {
  const u = l.repo.get<UserRecord>('users', id);
  if (!u) throw new NotFoundError('Unable to find a user with the specified identifier', { id });
  return u;
}

export function findUserByName(l: Leading, username: string): UserRecord | null {
  const id = l.repo.findKey('users', 'Username', username);
  return id === undefined ? null : l.repo.get<UserRecord>('users', id) ?? null;
}

export const listUsers = (l: Leading): UserRecord[] => [...l.repo.values<UserRecord>('users')].map((u) => structuredClone(u));

/** Removes the user with every API key and session of theirs, in one commit. */
export async function deleteUser(l: Leading, id: number): Promise<{ Id: number }> {
  return l.repo.withLock([`users:${id}`], async () => {
    getUser(l, id);
    const ops: WriteOp[] = [{ op: 'delete', collection: 'users', key: id }];
    for (const k of l.repo.values<ApiKeyRecord>('apikeys')) if (k.userId === id) ops.push({ op: 'delete', collection: 'apikeys', key: k.id });
    for (const s of l.repo.values<Session>('sessions')) if (s.userId === id) ops.push({ op: 'delete', collection: 'sessions', key: s.jti });
    await l.repo.commit(ops);
    return { Id: id };
  });
}

export async function createApiKey(l: Leading, p: { userId: number; description: string; digest: string; prefix: string }): Promise<ApiKeyRecord> {
  getUser(l, p.userId);
  const { id, op } = l.repo.nextId('apikeys');
  const key: ApiKeyRecord = { id, userId: p.userId, description: p.description, prefix: p.prefix, dateCreated: now(), lastUsed: 0, digest: p.digest };
  await l.repo.commit([op, { op: 'put', collection: 'apikeys', key: id, value: key }]);
  return key;
}

export const listApiKeys = (l: Leading, userId: number): ApiKeyRecord[] =>
  [...l.repo.values<ApiKeyRecord>('apikeys')].filter((k) => k.userId === userId).map((k) => structuredClone(k));

export async function deleteApiKey(l: Leading, userId: number, id: number): Promise<{ id: number }> {
  const k = l.repo.get<ApiKeyRecord>('apikeys', id);
  if (!k || k.userId !== userId) throw new NotFoundError('Unable to find an API key with the specified identifier', { id });
  await l.repo.commit([{ op: 'delete', collection: 'apikeys', key: id }]);
  return { id };
}

export function findApiKeyByDigest(l: Leading, digest: string): ApiKeyRecord | null {
  // The digest index is case-insensitive; compare exactly so base64 case differences never match.
  const id = l.repo.findKey('apikeys', 'digest', digest);
  const k = id === undefined ? undefined : l.repo.get<ApiKeyRecord>('apikeys', id);
  return k && k.digest === digest ? k : null;
}

export async function touchApiKey(l: Leading, id: number, lastUsed: number): Promise<{ ok: boolean }> {
  const k = l.repo.get<ApiKeyRecord>('apikeys', id);
  if (!k) return { ok: false };
  await l.repo.commit([{ op: 'put', collection: 'apikeys', key: id, value: { ...k, lastUsed } }]);
  return { ok: true };
}

export async function createSession(l: Leading, s: Session): Promise<Session> {
  getUser(l, s.userId);
  await l.repo.commit([{ op: 'put', collection: 'sessions', key: s.jti, value: s }]);
  return s;
}

export function getSession(l: Leading, jti: string): Session | null {
  const s = l.repo.get<Session>('sessions', jti);
  return s && s.exp > now() ? s : null;
}

export async function deleteSession(l: Leading, jti: string): Promise<{ ok: boolean }> {
  if (!l.repo.get('sessions', jti)) return { ok: false };
  await l.repo.commit([{ op: 'delete', collection: 'sessions', key: jti }]);
  return { ok: true };
}

/** Drops expired sessions so the collection stays as small as the number of live sign-ins. */
export async function pruneSessions(l: Leading): Promise<number> {
  const t = now();
  const ops: WriteOp[] = [...l.repo.values<Session>('sessions')].filter((s) => s.exp <= t).map((s) => ({ op: 'delete', collection: 'sessions', key: s.jti }));
  if (ops.length) await l.repo.commit(ops);
  return ops.length;
}
