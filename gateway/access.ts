import type { ServiceBroker } from 'moleculer';
import { call, Role, type Environment, type EnvironmentPage, type EnvironmentQuery, type Group, type Principal } from '../shared/contracts';
import { ForbiddenError } from '../shared/errors';

/*
 * Environment visibility for standard users (Portainer CE "restricted" routes): an environment is
 * visible when the user has a policy on it or on its group. Administrators see everything.
 * Team policies arrive with teams (RBAC issue).
 */

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

/** The page of environments a caller may see, with Portainer's two totals; state applies the policy filter. */
export async function listEnvironmentsFor(broker: ServiceBroker, principal: Principal, query: EnvironmentQuery): Promise<EnvironmentPage> {
  return call(broker, 'state.listEnvironments', isAdmin(principal) ? query : { ...query, visibleToUserId: principal.userId });
}

/** The groups a caller may see. */
export function visibleGroups(principal: Principal, groups: Group[]): Group[] {
  return isAdmin(principal) ? groups : groups.filter((g) => hasUserPolicy(g.UserAccessPolicies, principal.userId));
}
