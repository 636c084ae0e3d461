import type { Policy } from './policy.ts';
import type { AccountOutcome } from './readiness.ts';

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

/** The name of the error a unit fails with when its member's role cannot be assumed (lib/aws/member-clients.ts). */
export const MEMBER_ROLE_MISSING_ERROR = 'MemberRoleMissingError';

/** A unit that failed, as the scheduled runs record it. */
export interface FailedUnit {
  unit: { accountId: string; region: string };
  error: string;
  cause: string;
}

/**
 * How each account of a run went: `role-missing` when its role could not be assumed, `failed` when any of its
 * units failed otherwise (the first cause), else `ok`. Accounts in the order given.
 */
export function accountOutcomes(accounts: readonly string[], failures: readonly FailedUnit[]): AccountOutcome[] {
  return accounts.map((account) => {
    const failed = failures.filter((f) => f.unit.accountId === account);
    const missing = failed.find((f) => f.error === MEMBER_ROLE_MISSING_ERROR);
    if (missing) return { account, status: 'role-missing', message: missing.cause };
    const [first] = failed;
    if (!first) return { account, status: 'ok' };
    const where = failed.map((f) => f.unit.region).join(', ');
    return { account, status: 'failed', message: `${first.error}: ${first.cause} (${where})` };
  });
}
