import type { ServiceBroker } from 'moleculer';
import { call, Role, type Environment, type EnvironmentPage, type EnvironmentQuery, type Group, type Principal } from '../shared/contracts';
import { ForbiddenError } from '../shared/errors';

/*
 * Environment visibility for standard users (Portainer CE "restricted" routes): an environment is
 * visible when the user has a policy on it or on its group. Administrators see everything.
 *
 * Stop-gap: this belongs in rbac/state (a principal-aware list action, team policies included);
 * the action map has none yet, so the gateway filters here. Admin requests never take this path.
 */

const PAGE = 1000;
const MAX_PAGES = 200;

export function hasUserPolicy(policies: Record<string, unknown> | undefined, userId: number): boolean {
  return !!policies && Object.prototype.hasOwnProperty.call(policies, String(userId));
}

export function isAdmin(principal: Principal): boolean {
  return principal.role === Role.Admin;
}

/** 403 unless a standard user may see this group. */
export function assertGroupAccess(principal: Principal, group: Group): void {
  if (isAdmin(principal) || hasUserPolicy(group.UserAccessPolicies, principal.userId)) return;
  throw new ForbiddenError('Access denied', 'Permission denied to access environment group');
}

/** 403 unless a standard user may use this environment (policy on it or on its group). */
export async function assertEnvironmentAccess(broker: ServiceBroker, principal: Principal, env: Environment): Promise<void> {
  if (isAdmin(principal) || hasUserPolicy(env.UserAccessPolicies, principal.userId)) return;
  const group = await call(broker, 'state.getGroup', { id: env.GroupId }).catch(() => null);
  if (group && hasUserPolicy(group.UserAccessPolicies, principal.userId)) return;
  throw new ForbiddenError('Access denied', 'Permission denied to access environment');
}

async function scan(broker: ServiceBroker, query: EnvironmentQuery, keep: (e: Environment) => boolean): Promise<Environment[]> {
  const out: Environment[] = [];
  for (let page = 0; page < MAX_PAGES; page++) {
    const res = await call(broker, 'state.listEnvironments', { ...query, start: page * PAGE, limit: PAGE });
    for (const e of res.items) if (keep(e)) out.push(e);
    if (res.items.length < PAGE || (page + 1) * PAGE >= res.total) break;
  }
  return out;
}

/** The page of environments a caller may see, with Portainer's two totals. */
export async function listEnvironmentsFor(broker: ServiceBroker, principal: Principal, query: EnvironmentQuery): Promise<EnvironmentPage> {
  if (isAdmin(principal)) return call(broker, 'state.listEnvironments', query);
  const groups = await call(broker, 'state.listGroups', {});
  const openGroups = new Set(groups.filter((g) => hasUserPolicy(g.UserAccessPolicies, principal.userId)).map((g) => g.Id));
  const visible = (e: Environment) => hasUserPolicy(e.UserAccessPolicies, principal.userId) || openGroups.has(e.GroupId);

  const { start = 0, limit = 0, sort, order, ...filters } = query;
  const matching = await scan(broker, { ...filters, ...(sort ? { sort } : {}), ...(order ? { order } : {}) }, visible);
  const filtered = Object.values(filters).some((v) => v !== undefined);
  const totalAvailable = filtered ? (await scan(broker, {}, visible)).length : matching.length;
  const items = limit > 0 ? matching.slice(start, start + limit) : matching.slice(start);
  return { items, total: matching.length, totalAvailable };
}

/** Groups a caller may see. */
export function visibleGroups(principal: Principal, groups: Group[]): Group[] {
  return isAdmin(principal) ? groups : groups.filter((g) => hasUserPolicy(g.UserAccessPolicies, principal.userId));
}
