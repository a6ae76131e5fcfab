import type { Group, GroupCreate, GroupUpdate, Tag, TagCreate } from '../../../shared/contracts';
import { BadRequestError, ConflictError, ForbiddenError, NotFoundError } from '../../../shared/errors';
import type { WriteOp } from '../../../shared/store';
import { RESERVED } from '../repository';
import type { Leading, StoredEnvironment } from './context';

/** Group 1, created at bootstrap; environments fall back to it when their group is deleted. */
export const UNASSIGNED_GROUP_ID = 1;

function checkTags(l: Leading, ids: number[] | undefined) {
  const missing = (ids ?? []).filter((t) => !l.repo.get('tags', t));
  if (missing.length) throw new BadRequestError('Invalid tag identifier', { TagIDs: missing });
}

export async function createGroup(l: Leading, p: GroupCreate): Promise<Group> {
  const name = p.Name.trim();
  if (!name) throw new BadRequestError('Invalid group name', { Name: p.Name });
  checkTags(l, p.TagIDs);
  const unknown = (p.AssociatedEndpoints ?? []).filter((id) => !l.repo.get('environments', id));
  if (unknown.length) throw new BadRequestError('Invalid environment identifier', { AssociatedEndpoints: unknown });
  const associated = new Set(p.AssociatedEndpoints ?? []);
  const isAssociated = (e: StoredEnvironment) => associated.has(e.Id);
  const out = await l.repo.reserve([`groups:name:${name.toLowerCase()}`], () => l.repo.withLock(envLocks(l, isAssociated), async () => {
    if (l.repo.findKey('groups', 'Name', name) !== undefined) throw new ConflictError('A group with the same name already exists', { Name: name });
    const { id, op } = l.repo.nextId('groups');
    const group: Group = { Id: id, Name: name, Description: p.Description ?? '', TagIds: [...new Set(p.TagIDs ?? [])], UserAccessPolicies: {}, TeamAccessPolicies: {} };
    const moves = rewriteEnvs(l, isAssociated, (e) => ({ ...e, GroupId: id }));
    await l.repo.commit([op, { op: 'put', collection: 'groups', key: id, value: group }, ...moves]);
    return group;
  }));
  if (out === RESERVED) throw new ConflictError('A group with the same name is being created', { Name: name });
  return out;
}

export function getGroup(l: Leading, id: number): Group {
  const g = l.repo.get<Group>('groups', id);
  if (!g) throw new NotFoundError('Unable to find an environment group with the specified identifier', { id });
  return g;
}

export const listGroups = (l: Leading): Group[] => [...l.repo.values<Group>('groups')].map((g) => structuredClone(g));

export async function updateGroup(l: Leading, id: number, patch: GroupUpdate): Promise<Group> {
  return l.repo.withLock([`groups:${id}`], async () => {
    const cur = getGroup(l, id);
    checkTags(l, patch.TagIDs);
    const next: Group = {
      ...cur,
      Name: patch.Name?.trim() ?? cur.Name,
      Description: patch.Description ?? cur.Description,
      TagIds: patch.TagIDs ? [...new Set(patch.TagIDs)] : cur.TagIds,
      UserAccessPolicies: patch.UserAccessPolicies ?? cur.UserAccessPolicies,
      TeamAccessPolicies: patch.TeamAccessPolicies ?? cur.TeamAccessPolicies,
    };
    const other = l.repo.findKey('groups', 'Name', next.Name);
    if (other !== undefined && other !== id) throw new ConflictError('A group with the same name already exists', { Name: next.Name });
    await l.repo.commit([{ op: 'put', collection: 'groups', key: id, value: next }]);
    return next;
  });
}

/** Lock keys of the environments matching `pick`, so rewriting them cannot lose a concurrent update. */
function envLocks(l: Leading, pick: (e: StoredEnvironment) => boolean): string[] {
  return [...l.repo.values<StoredEnvironment>('environments')].filter(pick).map((e) => `environments:${e.Id}`);
}

/** Current copies of the environments matching `pick`, with `change` applied, as put ops. */
function rewriteEnvs(l: Leading, pick: (e: StoredEnvironment) => boolean, change: (e: StoredEnvironment) => StoredEnvironment): WriteOp[] {
  return [...l.repo.values<StoredEnvironment>('environments')].filter(pick)
    .map((e) => ({ op: 'put', collection: 'environments', key: e.Id, value: change(structuredClone(e)) }));
}

export async function deleteGroup(l: Leading, id: number): Promise<{ Id: number }> {
  if (id === UNASSIGNED_GROUP_ID) throw new ForbiddenError('Unable to remove the default "Unassigned" group', { id });
  const inGroup = (e: StoredEnvironment) => e.GroupId === id;
  return l.repo.withLock([`groups:${id}`, ...envLocks(l, inGroup)], async () => {
    getGroup(l, id);
    const moves = rewriteEnvs(l, inGroup, (e) => ({ ...e, GroupId: UNASSIGNED_GROUP_ID }));
    await l.repo.commit([{ op: 'delete', collection: 'groups', key: id }, ...moves]);
    return { Id: id };
  });
}

/** Tags with Portainer's back-references, computed from environments and groups. */
export function listTags(l: Leading): Tag[] {
  const tags = [...l.repo.values<{ ID: number; Name: string }>('tags')].map((t) => ({ ID: t.ID, Name: t.Name, Endpoints: {}, EndpointGroups: {} } as Tag));
  const byId = new Map(tags.map((t) => [t.ID, t]));
  for (const e of l.repo.values<StoredEnvironment>('environments')) for (const t of e.TagIds) if (byId.has(t)) byId.get(t)!.Endpoints[String(e.Id)] = true;
  for (const g of l.repo.values<Group>('groups')) for (const t of g.TagIds) if (byId.has(t)) byId.get(t)!.EndpointGroups[String(g.Id)] = true;
  return tags;
}

export async function createTag(l: Leading, p: TagCreate): Promise<Tag> {
  const name = p.Name.trim();
  if (!name) throw new BadRequestError('Invalid tag name', { Name: p.Name });
  const out = await l.repo.reserve([`tags:name:${name.toLowerCase()}`], async () => {
    if (l.repo.findKey('tags', 'Name', name) !== undefined) throw new ConflictError('This name is already associated to a tag', { Name: name });
    const { id, op } = l.repo.nextId('tags');
    await l.repo.commit([op, { op: 'put', collection: 'tags', key: id, value: { ID: id, Name: name } }]);
    return { ID: id, Name: name, Endpoints: {}, EndpointGroups: {} };
  });
  if (out === RESERVED) throw new ConflictError('A tag with the same name is being created', { Name: name });
  return out;
}

/** Deleting a tag also removes it from every environment and group that carried it. */
export async function deleteTag(l: Leading, id: number): Promise<{ ID: number }> {
  const tagged = (e: StoredEnvironment) => e.TagIds.includes(id);
  return l.repo.withLock([`tags:${id}`, ...envLocks(l, tagged)], async () => {
    if (!l.repo.get('tags', id)) throw new NotFoundError('Unable to find a tag with the specified identifier', { id });
    const ops: WriteOp[] = [{ op: 'delete', collection: 'tags', key: id }, ...rewriteEnvs(l, tagged, (e) => ({ ...e, TagIds: e.TagIds.filter((t) => t !== id) }))];
    for (const g of l.repo.values<Group>('groups')) if (g.TagIds.includes(id)) ops.push({ op: 'put', collection: 'groups', key: g.Id, value: { ...structuredClone(g), TagIds: g.TagIds.filter((t) => t !== id) } });
    await l.repo.commit(ops);
    return { ID: id };
  });
}
