import {
  paginateListAccounts,
  paginateListAccountsForParent,
  type Account,
  type OrganizationsClient,
} from '@aws-sdk/client-organizations';
import type { DiscoveredAccount } from '../domain/organization.ts';
import { paced, type TokenBucketPacer } from './pacer.ts';

/**
 * Discovers an organization's accounts. Organizations allows about one request per second per account for its
 * List calls, so the pages are paced (the caller hands in a pacer, as inventory does for EC2); the calls must come
 * from the management account or a delegated administrator (else AccessDeniedException, which is left to throw).
 */
export const REQUIRED_PERMISSIONS = ['organizations:ListAccounts', 'organizations:ListAccountsForParent'] as const;

/** Organizations' own rate: 1 request per second (a burst of a few), far below EC2's describe bucket. */
export const ORGANIZATIONS_RATE = { burst: 5, refillPerSecond: 1 } as const;

/** ListAccounts (`parents` undefined) or ListAccountsForParent for each root/OU id; every account once, any state. */
export async function listOrganizationAccounts(
  client: OrganizationsClient,
  parents: readonly string[] | undefined,
  pacer?: TokenBucketPacer,
): Promise<DiscoveredAccount[]> {
  const organizations = pacer ? paced(client, pacer, 'describe') : client;
  const found = new Map<string, DiscoveredAccount>();
  const add = (accounts: Account[] | undefined) => {
    for (const a of accounts ?? []) if (a.Id) found.set(a.Id, { id: a.Id, state: stateOf(a) });
  };
  if (parents === undefined) {
    for await (const page of paginateListAccounts({ client: organizations }, {})) add(page.Accounts);
  } else {
    for (const ParentId of parents)
      for await (const page of paginateListAccountsForParent({ client: organizations }, { ParentId }))
        add(page.Accounts);
  }
  return [...found.values()];
}

/** `State` (since 2025) when present, else the older `Status`; both say ACTIVE for a usable account. */
const stateOf = (account: Account): string => account.State ?? account.Status ?? 'UNKNOWN';
