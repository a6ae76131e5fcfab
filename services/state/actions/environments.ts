import {
  CreationType, EnvironmentStatus, EnvironmentType, asyncHeartbeatInterval, effectiveAsyncIntervals, isEdgeType, isOnline, parseIdList, settingsAsyncIntervals,
  type Environment, type EnvironmentCreate, type EnvironmentPage, type EnvironmentQuery, type EnvironmentUpdate, type Group, type Settings, type Tag,
} from '../../../shared/contracts';
import { BadRequestError, ConflictError, NotFoundError } from '../../../shared/errors';
import { encodeEdgeKey } from '../../../shared/crypto';
import { RESERVED } from '../repository';
import { CHECKINS, lastCheckIn, lower, now, settingsOf, type Leading, type StoredEnvironment } from './context';

const isEdge = (e: StoredEnvironment) => isEdgeType(e.Type);

/** Whether an Edge environment is online by its effective interval (async: the smallest timer). */
function alive(s: Settings, e: StoredEnvironment, last: number, at: number): boolean {
  const own = { Ping: e.Edge.PingInterval, Snapshot: e.Edge.SnapshotInterval, Command: e.Edge.CommandInterval };
  const interval = e.Edge.AsyncMode
    ? asyncHeartbeatInterval(effectiveAsyncIntervals(own, settingsAsyncIntervals(s)))
    : e.EdgeCheckinInterval || s.EdgeAgentCheckinInterval;
  return isOnline(last, interval, at);
}

/** Status as lists show it: for Edge environments, derived from the last check-in. */
function statusOf(l: Leading, s: Settings, e: StoredEnvironment, at: number): number {
  if (!isEdge(e)) return e.Status;
  return alive(s, e, lastCheckIn(l.repo, e.Id), at) ? EnvironmentStatus.Up : EnvironmentStatus.Down;
}

/** The environment as the API shows it: its last check-in (kept apart from the document) and the status it implies. */
function withHeartbeat(l: Leading, s: Settings, e: StoredEnvironment, at: number): Environment {
  const Status = statusOf(l, s, e, at);
  return { ...e, LastCheckInDate: lastCheckIn(l.repo, e.Id), Status, Heartbeat: Status === EnvironmentStatus.Up };
}

function checkRefs(l: Leading, groupId: number | undefined, tagIds: number[] | undefined) {
  if (groupId !== undefined && !l.repo.get<Group>('groups', groupId)) throw new BadRequestError('Invalid environment group identifier', { GroupID: groupId });
  const missing = (tagIds ?? []).filter((t) => !l.repo.get<Tag>('tags', t));
  if (missing.length) throw new BadRequestError('Invalid tag identifier', { TagIds: missing });
}

/** The API URL agents will call: the one typed at creation, else CAPSTAN_PUBLIC_URL (reference 1.2). */
function edgeApiUrl(l: Leading, typed: string | undefined): URL {
  const raw = (typed ?? '').trim() || l.config.publicUrl;
  if (!raw) throw new BadRequestError('URL is required for an Edge environment', { URL: 'the Capstan API URL agents will reach, e.g. https://capstan.example.com:9443 (or set CAPSTAN_PUBLIC_URL)' });
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new BadRequestError('Invalid URL', { URL: raw });
  }
  if (!/^https?:$/.test(url.protocol) || !url.hostname) throw new BadRequestError('Invalid URL: expected http(s)://host[:port]', { URL: raw });
  if (url.hostname === 'localhost') throw new BadRequestError('Invalid URL: agents cannot reach "localhost"; use an address they can reach', { URL: raw });
  return url;
}

export async function createEnvironment(l: Leading, p: EnvironmentCreate): Promise<Environment> {
  if (p.EndpointCreationType === CreationType.Azure || p.EndpointCreationType === CreationType.LocalKubernetes) {
    throw new BadRequestError('Unsupported environment type', { EndpointCreationType: p.EndpointCreationType, supported: [1, 2, 4] });
  }
  const name = p.Name.trim();
  if (!name) throw new BadRequestError('Invalid environment name', { Name: p.Name });
  const groupId = p.GroupID ?? 1;
  checkRefs(l, groupId, p.TagIds);
  const edge = p.EndpointCreationType === CreationType.EdgeAgent;
  const apiUrl = edge ? edgeApiUrl(l, p.URL) : undefined;
  if (!edge && !(p.URL ?? '').trim()) throw new BadRequestError('URL is required', { URL: 'e.g. unix:///var/run/docker.sock or tcp://host:2375' });
  const nameKey = `environments:name:${lower(name)}`;
  const out = await l.repo.reserve([nameKey], async () => {
    if (l.repo.findKey('environments', 'Name', name) !== undefined) throw new ConflictError('An environment with the same name already exists', { Name: name });
    const { id, op: seqOp } = l.repo.nextId('environments');
    const env: StoredEnvironment = {
      Id: id, Name: name,
      Type: edge ? EnvironmentType.EdgeAgentOnDocker : p.EndpointCreationType === CreationType.Agent ? EnvironmentType.AgentOnDocker : EnvironmentType.Docker,
      URL: edge ? apiUrl!.origin : p.URL!.trim(), PublicURL: p.PublicURL ?? '', GroupId: groupId, TagIds: [...new Set(p.TagIds ?? [])],
      Status: edge ? EnvironmentStatus.Down : EnvironmentStatus.Up,
      EdgeID: '', EdgeKey: '', EdgeCheckinInterval: p.EdgeCheckinInterval ?? 0, UserTrusted: true, Heartbeat: false,
      ContainerEngine: p.ContainerEngine ?? 'docker', Agent: { Version: '' },
      Edge: { AsyncMode: !!p.EdgeAsync, PingInterval: p.EdgePingInterval ?? 0, SnapshotInterval: p.EdgeSnapshotInterval ?? 0, CommandInterval: p.EdgeCommandInterval ?? 0 },
      UserAccessPolicies: {}, TeamAccessPolicies: {}, Snapshots: [], CreationDate: now(),
    };
    if (edge) {
      const tunnelHost = l.config.tunnelHost || apiUrl!.hostname;
      env.EdgeKey = encodeEdgeKey({ apiUrl: apiUrl!.origin, tunnelAddr: `${tunnelHost}:${l.config.tunnelPort}`, fingerprint: l.fingerprint, endpointId: id });
    }
    await l.repo.commit([seqOp, { op: 'put', collection: 'environments', key: id, value: env }]);
    return env;
  });
  if (out === RESERVED) throw new ConflictError('An environment with the same name is being created', { Name: name });
  return withHeartbeat(l, settingsOf(l.repo), out, now());
}

export function getEnvironment(l: Leading, id: number): Environment {
  const e = l.repo.get<StoredEnvironment>('environments', id);
  if (!e) throw new NotFoundError('Unable to find an environment with the specified identifier', { id });
  return withHeartbeat(l, settingsOf(l.repo), e, now());
}

const collator = new Intl.Collator('en', { sensitivity: 'base', numeric: true });

const hasPolicy = (policies: Record<string, unknown>, userId: number) => Object.prototype.hasOwnProperty.call(policies, String(userId));

export function listEnvironments(l: Leading, q: EnvironmentQuery & { visibleToUserId?: number }): EnvironmentPage {
  const at = now();
  const settings = settingsOf(l.repo);
  const viewer = q.visibleToUserId;
  const openGroups = viewer === undefined ? undefined
    : new Set([...l.repo.values<Group>('groups')].filter((g) => hasPolicy(g.UserAccessPolicies, viewer)).map((g) => g.Id));
  const visible = (e: StoredEnvironment) => viewer === undefined || hasPolicy(e.UserAccessPolicies, viewer) || openGroups!.has(e.GroupId);
  let available = 0;
  const [groupIds, tagIds, types, ids, statuses] = [q.groupIds, q.tagIds, q.types, q.endpointIds, q.status].map((v) => {
    const list = parseIdList(v);
    return list ? new Set(list) : undefined;
  });
  const search = q.search?.trim().toLowerCase();
  const groups = search ? new Map([...l.repo.values<Group>('groups')].map((g) => [g.Id, g.Name.toLowerCase()])) : undefined;
  const tags = search ? new Map([...l.repo.values<Tag>('tags')].map((t) => [t.ID, t.Name.toLowerCase()])) : undefined;
  const items: StoredEnvironment[] = [];
  for (const raw of l.repo.values<StoredEnvironment>('environments')) {
    if (!visible(raw)) continue;
    available++;
    if (ids && !ids.has(raw.Id)) continue;
    if (groupIds && !groupIds.has(raw.GroupId)) continue;
    if (types && !types.has(raw.Type)) continue;
    if (tagIds && !raw.TagIds.some((t) => tagIds.has(t))) continue;
    if (q.edgeAsync !== undefined && raw.Edge.AsyncMode !== q.edgeAsync) continue;
    if (search && !(raw.Name.toLowerCase().includes(search) || raw.URL.toLowerCase().includes(search)
      || groups!.get(raw.GroupId)?.includes(search) || raw.TagIds.some((t) => tags!.get(t)?.includes(search)))) continue;
    if (statuses && !statuses.has(statusOf(l, settings, raw, at))) continue;
    items.push(raw);
  }
  const dir = q.order === 'desc' ? -1 : 1;
  const key = q.sort ?? 'Id';
  const last = (e: StoredEnvironment) => lastCheckIn(l.repo, e.Id);
  const cmp: (a: StoredEnvironment, b: StoredEnvironment) => number =
    key === 'Name' ? (a, b) => collator.compare(a.Name, b.Name)
      : key === 'Group' ? (a, b) => a.GroupId - b.GroupId
        : key === 'Status' ? (a, b) => statusOf(l, settings, a, at) - statusOf(l, settings, b, at)
          : key === 'LastCheckIn' ? (a, b) => last(a) - last(b)
            : key === 'EdgeID' ? (a, b) => collator.compare(a.EdgeID, b.EdgeID)
              : (a, b) => a.Id - b.Id;
  items.sort((a, b) => dir * cmp(a, b) || a.Id - b.Id);
  const start = q.start ?? 0;
  const page = q.limit ? items.slice(start, start + q.limit) : items.slice(start);
  // Only the page is copied (items are the leader's live documents). Lists carry the snapshot
  // summary only; raw Docker payloads never leave through a list.
  const out = page.map((raw) => {
    const e = withHeartbeat(l, settings, structuredClone(raw), at);
    e.Snapshots = e.Snapshots.map(({ DockerSnapshotRaw: _raw, ...summary }: any) => summary);
    return e;
  });
  return { items: out, total: items.length, totalAvailable: available };
}

export async function updateEnvironment(l: Leading, id: number, patch: EnvironmentUpdate): Promise<Environment> {
  return l.repo.withLock([`environments:${id}`], async () => {
    const cur = l.repo.get<StoredEnvironment>('environments', id);
    if (!cur) throw new NotFoundError('Unable to find an environment with the specified identifier', { id });
    const tagIds = patch.TagIDs ?? patch.TagIds;
    checkRefs(l, patch.GroupID, tagIds);
    const next: StoredEnvironment = { ...cur };
    if (patch.Name !== undefined) next.Name = patch.Name.trim();
    if (patch.URL !== undefined && !isEdge(cur)) next.URL = patch.URL;
    if (patch.PublicURL !== undefined) next.PublicURL = patch.PublicURL;
    if (patch.GroupID !== undefined) next.GroupId = patch.GroupID;
    if (tagIds !== undefined) next.TagIds = [...new Set(tagIds)];
    if (patch.Status !== undefined && !isEdge(cur)) next.Status = patch.Status;
    if (patch.EdgeCheckinInterval !== undefined) next.EdgeCheckinInterval = patch.EdgeCheckinInterval;
    if (patch.EdgePingInterval !== undefined || patch.EdgeSnapshotInterval !== undefined || patch.EdgeCommandInterval !== undefined) {
      next.Edge = {
        ...cur.Edge,
        PingInterval: patch.EdgePingInterval ?? cur.Edge.PingInterval,
        SnapshotInterval: patch.EdgeSnapshotInterval ?? cur.Edge.SnapshotInterval,
        CommandInterval: patch.EdgeCommandInterval ?? cur.Edge.CommandInterval,
      };
    }
    if (patch.UserAccessPolicies !== undefined) next.UserAccessPolicies = patch.UserAccessPolicies;
    if (patch.TeamAccessPolicies !== undefined) next.TeamAccessPolicies = patch.TeamAccessPolicies;
    const write = () => l.repo.commit([{ op: 'put', collection: 'environments', key: id, value: next }]);
    if (lower(next.Name) !== lower(cur.Name)) {
      const r = await l.repo.reserve([`environments:name:${lower(next.Name)}`], async () => {
        const other = l.repo.findKey('environments', 'Name', next.Name);
        if (other !== undefined && other !== id) throw new ConflictError('An environment with the same name already exists', { Name: next.Name });
        await write();
      });
      if (r === RESERVED) throw new ConflictError('An environment with the same name is being created', { Name: next.Name });
    } else await write();
    return withHeartbeat(l, settingsOf(l.repo), next, now());
  });
}

export async function deleteEnvironment(l: Leading, id: number): Promise<{ Id: number }> {
  return l.repo.withLock([`environments:${id}`], async () => {
    if (!l.repo.get('environments', id)) throw new NotFoundError('Unable to find an environment with the specified identifier', { id });
    await l.repo.commit([
      { op: 'delete', collection: 'environments', key: id }, { op: 'delete', collection: 'snapshots', key: id }, { op: 'delete', collection: CHECKINS, key: id },
    ]);
    return { Id: id };
  });
}
