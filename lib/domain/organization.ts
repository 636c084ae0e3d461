import type { Policy } from './policy.ts';

/**
 * Organization reach, decided without AWS: which accounts a run covers and under which role. The deployment's own
 * (home) account is always first; members follow in id order, each once, whether listed in `accounts` or found
 * under `organization` (see lib/aws/organizations.ts for the discovery).
 */

export const DEFAULT_MEMBER_ROLE = 'ami-dr-member';
/** The RoleSessionName of every member session: CloudTrail in the member shows `assumed-role/<role>/ami-dr`. */
export const MEMBER_SESSION_NAME = 'ami-dr';

export interface DiscoveredAccount {
  id: string;
  /** Organizations' `State` (or the older `Status`): only ACTIVE accounts are governed. */
  state: string;
}

/** Does the policy reach beyond the home account? */
export const reachesMembers = (policy: Readonly<Policy>): boolean =>
  (policy.accounts?.length ?? 0) > 0 || policy.organization !== undefined;

/** The member accounts: listed ones and discovered active ones, without the home account, sorted, each once. */
export function memberAccounts(
  policy: Readonly<Policy>,
  discovered: readonly DiscoveredAccount[],
  homeAccountId: string,
): string[] {
  const ids = new Set(policy.accounts ?? []);
  for (const account of discovered) if (account.state === 'ACTIVE') ids.add(account.id);
  ids.delete(homeAccountId);
  return [...ids].sort();
}

/** Every account a run covers: home first, then the members. */
export const accountsOfRun = (homeAccountId: string, members: readonly string[]): string[] => [
  homeAccountId,
  ...members.filter((m) => m !== homeAccountId),
];

/** The role assumed in a member account (the role name may carry a path, as IAM allows). */
export function memberRoleArn(policy: Readonly<Policy>, accountId: string, partition = 'aws'): string {
  const role = (policy.organization?.memberRole ?? DEFAULT_MEMBER_ROLE).replace(/^\/+/, '');
  return `arn:${partition}:iam::${accountId}:role/${role}`;
}

/** The partition of an ARN (`aws`, `aws-cn`, `aws-us-gov`), for member role ARNs built from the home account's. */
export const partitionOf = (arn: string | undefined): string => arn?.split(':')[1] || 'aws';
