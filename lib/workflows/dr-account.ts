import { assumedClients, DrAccountAccessError } from '../aws/assume-role.ts';
import { type Clients, ec2Client, kmsClient } from '../aws/clients.ts';
import { describeImage } from '../aws/copy.ts';
import { shareSource, sourceKeys, unshareSource } from '../aws/source-share.ts';
import { drillRoleArn, drRoleArn, shareRefusal, UnshareableSourceError } from '../domain/dr-account.ts';
import { drAccounts, drRegion, type DrRegion, type Policy } from '../domain/policy.ts';
import type { Summary, Target } from '../domain/replication-steps.ts';

/**
 * The DR-account side of a replication: the clients a target's calls go through (ami-dr's own, or a session of the
 * DR account's role), and the source's share with the DR account, made before its copy and taken back after.
 */

export interface DrDeps {
  clients: Clients;
  policy: Readonly<Policy>;
  now?: () => Date;
}

/** The clients for a target region: ami-dr's own, or (a DR account's target) its role's session. */
export async function targetClients(
  deps: DrDeps,
  target: Pick<Target, 'region' | 'account' | 'roleArn'>,
): Promise<Clients> {
  if (!target.account) return deps.clients;
  const roleArn = target.roleArn ?? drRoleArn({ account: target.account });
  const now = deps.now;
  return assumedClients(deps.clients, roleArn!, target.region, now ? () => now().getTime() : undefined);
}

/**
 * Shares the source with the target's DR account: launch permission, its snapshots, and a grant to the DR role on
 * each customer managed key that encrypts them. A source under the AWS managed key is refused first, with nothing
 * shared, so nothing is left behind.
 */
export async function shareWithDrAccount(
  deps: DrDeps,
  source: { region: string; imageId: string },
  target: Target,
): Promise<void> {
  if (!target.account) return;
  const ec2 = ec2Client(deps.clients, source.region);
  const kms = kmsClient(deps.clients, source.region);
  const image = await describeImage(ec2, source.region, source.imageId);
  const snapshotIds = image?.snapshots.map((s) => s.snapshotId) ?? [];
  const keys = await sourceKeys(ec2, kms, snapshotIds);
  const refusal = shareRefusal(source.imageId, keys);
  if (refusal) throw new UnshareableSourceError(refusal);
  const grantee = target.roleArn ?? drRoleArn({ account: target.account })!;
  await shareSource(ec2, kms, { imageId: source.imageId, snapshotIds, keys, account: target.account, grantee });
}

/**
 * Takes the source's share with every DR account of the policy back (unless `replication.keepSourceShare`), once
 * every region's copy has ended. Idempotent: a share never made, or already removed, removes nothing. A failure is
 * reported per account, not thrown: the copies are done either way.
 */
export async function unshareFromDrAccounts(
  deps: DrDeps,
  source: { region: string; imageId: string },
): Promise<NonNullable<Summary['shares']>> {
  const accounts = drAccounts(deps.policy).filter((a) =>
    deps.policy.regions.dr.some((d) => d.account === a && d.region !== source.region),
  );
  if (accounts.length === 0) return [];
  if (deps.policy.replication.keepSourceShare)
    return accounts.map((account) => ({ account, removed: false, grantsRevoked: 0 }));
  const ec2 = ec2Client(deps.clients, source.region);
  const kms = kmsClient(deps.clients, source.region);
  const image = await describeImage(ec2, source.region, source.imageId);
  const snapshotIds = image?.snapshots.map((s) => s.snapshotId) ?? [];
  const keys = (await sourceKeys(ec2, kms, snapshotIds)).filter((k) => k.manager !== 'AWS');
  const shares: NonNullable<Summary['shares']> = [];
  for (const account of accounts) {
    try {
      const { grantsRevoked } = await unshareSource(ec2, kms, { imageId: source.imageId, snapshotIds, keys, account });
      shares.push({ account, removed: true, grantsRevoked: grantsRevoked.length });
    } catch (error) {
      const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      shares.push({ account, removed: false, grantsRevoked: 0, error: reason });
    }
  }
  return shares;
}

/** The account a target region's copies live in, for results and reports. */
export const targetAccount = (policy: Policy, region: string): string | undefined => drRegion(policy, region)?.account;

export interface DrAccountReach {
  /** The clients a region's checks go through (a DR account's role session, else ami-dr's own). */
  clientsFor(region: string): Clients;
  /** DR regions whose account could not be reached, with why (field named as the policy names it). */
  problems: { index: number; region: string; account: string; field: string; roleArn: string; message: string }[];
}

/** Which role of the DR accounts a reach assumes: the replicator (copies, readiness) or the drill role. */
export interface DrRoleChoice {
  roleArn(d: DrRegion): string;
  /** The policy field that names the role. */
  field: 'role' | 'drillRole';
  /** What to do about a role that cannot be assumed. */
  hint: string;
}

export const REPLICATOR_ROLE: DrRoleChoice = {
  roleArn: (d) => drRoleArn(d)!,
  field: 'role',
  hint: "deploy deploy/dr-account.yml there; its replicator trusts only the production account's ProductionRolePrefix* roles",
};

export const DRILL_ROLE: DrRoleChoice = {
  roleArn: (d) => drillRoleArn(d)!,
  field: 'drillRole',
  hint: "deploy deploy/dr-account.yml there; its drill role trusts only the production account's ProductionRolePrefix*-drill role",
};

/**
 * Reaches every DR account of the policy (validate, readiness, drills): one role session per DR region, or the reason
 * it cannot be had. A region not reached is read through no one: its clients are ami-dr's own only for own-account
 * regions.
 */
export async function reachDrAccounts(deps: DrDeps, role: DrRoleChoice = REPLICATOR_ROLE): Promise<DrAccountReach> {
  const byRegion = new Map<string, Clients>();
  const problems: DrAccountReach['problems'] = [];
  for (const [index, d] of deps.policy.regions.dr.entries()) {
    if (!d.account) continue;
    const roleArn = role.roleArn(d);
    try {
      byRegion.set(d.region, await targetClients(deps, { region: d.region, account: d.account, roleArn }));
    } catch (error) {
      if (!(error instanceof DrAccountAccessError)) throw error;
      problems.push({
        index,
        region: d.region,
        account: d.account,
        field: `regions.dr.${index}.${role.field}`,
        roleArn,
        message: `${error.message} (${role.hint})`,
      });
    }
  }
  return { clientsFor: (region) => byRegion.get(region) ?? deps.clients, problems };
}
