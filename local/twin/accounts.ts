import type { TwinRequest, TwinResponse } from './http.ts';
import { TwinOrganization } from './organizations.ts';
import { startTwin, type Twin, type TwinOptions } from './twin.ts';

/**
 * Several accounts on one endpoint: one twin per account (each with its own images, keys and event bus), sharing
 * the clock and the access-key map. Calls reach the endpoint of the first (home, management) account and are
 * answered by the account the signing key belongs to, so a member's clients (credentials from STS AssumeRole) work
 * in that member, as on AWS. The organization holds every account; `ous` puts members under OUs.
 *
 *   const org = await startOrganizationTwins({ home: '111122223333', members: { 'workloads': ['444455556666'] } });
 *   org.organization.deployMemberRole('444455556666', 'ami-dr-member', { trustedAccount: '111122223333' });
 */
export interface OrganizationTwinsOptions extends Omit<TwinOptions, 'accountId' | 'accounts'> {
  home: string;
  /** OU name -> member account ids under it. */
  members: Record<string, string[]>;
}

export interface OrganizationTwins {
  home: Twin;
  /** Member account id -> its twin. */
  members: Map<string, Twin>;
  organization: TwinOrganization;
  /** OU name -> its id. */
  ous: Map<string, string>;
  /** Every account's twin, home first. */
  all(): Twin[];
  /** Settles every account's due transitions and events. */
  settle(): Promise<void>;
  stop(): Promise<void>;
}

export async function startOrganizationTwins(options: OrganizationTwinsOptions): Promise<OrganizationTwins> {
  const { home: homeId, members: byOu, ...twinOptions } = options;
  const organization = new TwinOrganization(homeId, undefined, twinOptions.clock?.now());
  const ous = new Map<string, string>();
  for (const [name, accounts] of Object.entries(byOu)) {
    const ouId = organization.addOu(name);
    ous.set(name, ouId);
    for (const account of accounts) organization.addAccount(account, { parentId: ouId });
  }
  const identities: Record<string, string> = { ...twinOptions.identities };
  const peers = new Map<string, (request: TwinRequest) => Promise<TwinResponse>>();
  const accounts = { identities, peers, organization };
  const members = new Map<string, Twin>();
  for (const account of Object.values(byOu).flat()) {
    // Members' images are EBS-backed here: no S3 of their own.
    const twin = await startTwin({ ...twinOptions, s3: false, accountId: account, accounts });
    twin.state.idRange(members.size + 1);
    members.set(account, twin);
    peers.set(account, (request) => twin.handle(request));
  }
  const home = await startTwin({ ...twinOptions, accountId: homeId, accounts });
  peers.set(homeId, (request) => home.handle(request));
  const all = () => [home, ...members.values()];
  return {
    home,
    members,
    organization,
    ous,
    all,
    settle: async () => {
      for (const twin of all()) await twin.settle();
    },
    stop: async () => {
      await Promise.all(all().map((t) => t.stop()));
    },
  };
}
