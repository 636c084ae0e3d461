import { DEFAULT_DR_ROLE, DEFAULT_DRILL_ROLE, drRegion, type DrRegion, type Policy } from './policy.ts';

/**
 * Isolated DR accounts, decided without I/O: the role ami-dr assumes there, whether a copy is protected, which
 * grant lets the DR account read an encrypted source, and why a source cannot be shared at all.
 */

/** A DR region whose copies a DR account owns, as the replication's targets carry it. */
export interface AccountTarget {
  region: string;
  account?: string;
  roleArn?: string;
}

/** The role ami-dr assumes in the DR account of a target (the policy's `role`, else `ami-dr-replicator`). */
export function drRoleArn(target: Pick<DrRegion, 'account' | 'role'>): string | undefined {
  return target.account ? `arn:aws:iam::${target.account}:role/${target.role ?? DEFAULT_DR_ROLE}` : undefined;
}

/**
 * The role restore drills assume in the DR account of a region (the policy's `drillRole`, else `ami-dr-drill`): the
 * drill launches where recovery would, and under a role that can launch and terminate drill instances and record
 * the outcome on the copy, nothing more.
 */
export function drillRoleArn(target: Pick<DrRegion, 'account' | 'drillRole'>): string | undefined {
  return target.account ? `arn:aws:iam::${target.account}:role/${target.drillRole ?? DEFAULT_DRILL_ROLE}` : undefined;
}

/** Deregistration protection for a region's copies: its own setting, else on in a DR account, else the policy's. */
export function protectionFor(policy: Policy, region: string): boolean {
  const d = drRegion(policy, region);
  return d?.deregistrationProtection ?? (d?.account ? true : policy.replication.deregistrationProtection);
}

/** The DR account a region's copies live in, or undefined for ami-dr's own account. */
export const accountOf = (policy: Policy, region: string): string | undefined => drRegion(policy, region)?.account;

/**
 * The KMS operations a DR account's role needs on the source's key to copy it: read it (Decrypt, DescribeKey) and
 * let EBS make its own grant for the copy (CreateGrant), as for any encrypted copy.
 */
export const SOURCE_GRANT_OPERATIONS = ['Decrypt', 'DescribeKey', 'CreateGrant', 'ReEncryptFrom'] as const;

/** The name of the grant on a source key for one image's copy into one DR account: found again to revoke it. */
export const sourceGrantName = (sourceImageId: string, account: string): string =>
  `ami-dr-source-${sourceImageId}-${account}`;

export interface SourceKey {
  keyArn: string;
  /** KMS's KeyManager: `AWS` for the AWS managed `aws/ebs` key. */
  manager: string;
}

/** Refused before anything is shared (so nothing is left to undo); its name is the region's reported error. */
export class UnshareableSourceError extends Error {
  override name = 'UnshareableSourceError';
}

/**
 * Why a source cannot be copied into another account, if it cannot. EC2 does not share snapshots encrypted under
 * the AWS managed key `aws/ebs`, and no other account may use that key, so ami-dr refuses such a source with the
 * reason instead of making an intermediate copy under another key (see README, "DR accounts").
 */
export function shareRefusal(sourceImageId: string, keys: readonly SourceKey[]): string | undefined {
  const managed = keys.filter((k) => k.manager === 'AWS');
  if (managed.length === 0) return undefined;
  return `${sourceImageId} is encrypted under the AWS managed key aws/ebs (${managed.map((k) => k.keyArn).join(', ')}), which cannot be shared with another account: re-encrypt the image under a customer managed key (CopyImage with KmsKeyId in its region) or replicate it within the account`;
}
