import { CreateGrantCommand, RevokeGrantCommand, type GrantOperation, type KMSClient } from '@aws-sdk/client-kms';
import { ModifyImageAttributeCommand, ModifySnapshotAttributeCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { SOURCE_GRANT_OPERATIONS, sourceGrantName, type SourceKey } from '../domain/dr-account.ts';
import { isAwsError } from '../domain/errors.ts';
import { describeKey } from './account.ts';
import { describeSnapshotKeys } from './images.ts';
import { listKeyGrants } from './key-access.ts';

/**
 * Sharing a source image with a DR account for the time its copy takes: launch permission on the image,
 * createVolumePermission on its snapshots (a cross-account copy reads them), and a grant on each customer managed
 * key that encrypts them; and taking all of it back.
 */
export const REQUIRED_PERMISSIONS = [
  'ec2:ModifyImageAttribute',
  'ec2:ModifySnapshotAttribute',
  'ec2:DescribeSnapshots',
  'kms:DescribeKey',
  'kms:CreateGrant',
  'kms:ListGrants',
  'kms:RevokeGrant',
] as const;

/** The keys that encrypt these snapshots, with who manages each (the AWS managed `aws/ebs` key cannot be shared). */
export async function sourceKeys(ec2: EC2Client, kms: KMSClient, snapshotIds: string[]): Promise<SourceKey[]> {
  const keyArns = new Set(
    [...(await describeSnapshotKeys(ec2, snapshotIds)).values()].flatMap((k) => k.kmsKeyId ?? []),
  );
  const keys: SourceKey[] = [];
  for (const keyArn of keyArns) {
    const key = await describeKey(kms, keyArn);
    keys.push({ keyArn: key?.arn ?? keyArn, manager: key?.manager ?? 'CUSTOMER' });
  }
  return keys;
}

export interface SourceShare {
  imageId: string;
  snapshotIds: string[];
  keys: SourceKey[];
  account: string;
  /** Who the key grants go to: the role that copies in the DR account. */
  grantee: string;
}

/** Shares the source with the DR account; idempotent (an existing grant of the same name is kept). */
export async function shareSource(ec2: EC2Client, kms: KMSClient, share: SourceShare): Promise<void> {
  await ec2.send(
    new ModifyImageAttributeCommand({ ImageId: share.imageId, LaunchPermission: { Add: [{ UserId: share.account }] } }),
  );
  for (const snapshotId of share.snapshotIds) {
    await ec2.send(
      new ModifySnapshotAttributeCommand({
        SnapshotId: snapshotId,
        Attribute: 'createVolumePermission',
        OperationType: 'add',
        CreateVolumePermission: { Add: [{ UserId: share.account }] },
      }),
    );
  }
  const name = sourceGrantName(share.imageId, share.account);
  for (const key of share.keys) {
    if ((await listKeyGrants(kms, key.keyArn)).some((g) => g.name === name)) continue;
    await kms.send(
      new CreateGrantCommand({
        KeyId: key.keyArn,
        GranteePrincipal: share.grantee,
        Operations: [...SOURCE_GRANT_OPERATIONS] as GrantOperation[],
        Name: name,
      }),
    );
  }
}

export interface Unshared {
  /** Grants revoked, by id. */
  grantsRevoked: string[];
}

/** Takes the share back: launch permission, snapshot permissions, and the grants named for this image and account. */
export async function unshareSource(
  ec2: EC2Client,
  kms: KMSClient,
  share: Omit<SourceShare, 'grantee'>,
): Promise<Unshared> {
  try {
    await ec2.send(
      new ModifyImageAttributeCommand({
        ImageId: share.imageId,
        LaunchPermission: { Remove: [{ UserId: share.account }] },
      }),
    );
  } catch (error) {
    // The source may be gone (deregistered while its copy ran): nothing left to unshare on it.
    if (!isAwsError(error, 'InvalidAMIID.NotFound', 'InvalidAMIID.Unavailable')) throw error;
  }
  for (const snapshotId of share.snapshotIds) {
    try {
      await ec2.send(
        new ModifySnapshotAttributeCommand({
          SnapshotId: snapshotId,
          Attribute: 'createVolumePermission',
          OperationType: 'remove',
          CreateVolumePermission: { Remove: [{ UserId: share.account }] },
        }),
      );
    } catch (error) {
      if (!isAwsError(error, 'InvalidSnapshot.NotFound')) throw error;
    }
  }
  const name = sourceGrantName(share.imageId, share.account);
  const grantsRevoked: string[] = [];
  for (const key of share.keys) {
    for (const grant of await listKeyGrants(kms, key.keyArn)) {
      if (grant.name !== name) continue;
      await kms.send(new RevokeGrantCommand({ KeyId: key.keyArn, GrantId: grant.grantId }));
      grantsRevoked.push(grant.grantId);
    }
  }
  return { grantsRevoked };
}
