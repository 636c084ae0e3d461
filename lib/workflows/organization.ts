import { callerAccountId } from '../aws/account.ts';
import { type Clients, organizationsClient, stsClient } from '../aws/clients.ts';
import { policyMemberClients } from '../aws/member-clients.ts';
import { listOrganizationAccounts, ORGANIZATIONS_RATE } from '../aws/organizations.ts';
import { TokenBucketPacer } from '../aws/pacer.ts';
import { accountsOfRun, memberAccounts, reachesMembers } from '../domain/organization.ts';
import type { Policy } from '../domain/policy.ts';
import { reachClients, type UnitClients } from './units.ts';

/**
 * Organization reach: which accounts a scheduled run covers. The plan step of each scheduled state machine asks
 * once per run; the accounts then travel in the work units (lib/workflows/units.ts), whose clients reach a member
 * through its role (lib/aws/member-clients.ts).
 */

/** Organizations is a global service with its endpoint in us-east-1 (aws partition). */
const ORGANIZATIONS_REGION = 'us-east-1';

export interface ReachOptions {
  /** The home account's clients (Organizations is asked with them). */
  clients: Clients;
  policy: Readonly<Policy>;
  homeAccountId: string;
  now?: () => number;
  /** Waits for the Organizations pacer (the runtime's virtual time in tests); default a timer. */
  sleep?: (ms: number) => Promise<void>;
}

/** The accounts a run covers: home first, then the members listed in the policy or discovered under its OUs. */
export async function accountsOfReach(options: ReachOptions): Promise<string[]> {
  const { policy, homeAccountId } = options;
  if (!reachesMembers(policy)) return [homeAccountId];
  const discovered = policy.organization
    ? await listOrganizationAccounts(
        organizationsClient(options.clients, ORGANIZATIONS_REGION),
        policy.organization.ous,
        new TokenBucketPacer({ limits: { describe: ORGANIZATIONS_RATE }, now: options.now, sleep: options.sleep }),
      )
    : [];
  return accountsOfRun(homeAccountId, memberAccounts(policy, discovered, homeAccountId));
}

/**
 * A scheduled task's account and its units' clients, made once per warm Lambda (member sessions are kept in it
 * until they near expiry): the function's own clients in the home account, a member's role session elsewhere.
 */
export async function scheduledUnitClients(
  policy: Readonly<Policy>,
  home: Clients,
  region: string,
): Promise<{ accountId: string; clientsFor: UnitClients }> {
  const accountId = await callerAccountId(stsClient(home, region));
  return { accountId, clientsFor: reachClients(home, accountId, policyMemberClients(home, policy, accountId)) };
}
