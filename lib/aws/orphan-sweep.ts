import {
  DeleteSnapshotCommand,
  DescribeImagesCommand,
  DescribeSnapshotAttributeCommand,
  DescribeSnapshotsCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import type { SweptSnapshot } from '../domain/orphan-sweep.ts';
import { describeImagesById } from './images.ts';
import type { TokenBucketPacer } from './pacer.ts';

/**
 * The orphan sweep's calls (lib/workflows/orphan-sweep.ts runs it): the account's snapshots and images, the named
 * AMIs proven gone (DescribeImages by filter), a suspect's sharing (DescribeSnapshotAttribute), a deletion.
 */

export const REQUIRED_PERMISSIONS = [
  'ec2:DescribeSnapshots',
  'ec2:DescribeImages',
  'ec2:DescribeSnapshotAttribute',
  'ec2:DeleteSnapshot',
] as const;

/** A describe call, paced and counted by the caller. */
export type Describe = <T>(fn: () => Promise<T>) => Promise<T>;

/** Every snapshot the account owns in the region. */
export async function ownSnapshots(ec2: EC2Client, describe: Describe): Promise<SweptSnapshot[]> {
  const snapshots: SweptSnapshot[] = [];
  let NextToken: string | undefined;
  do {
    const out = await describe(() =>
      ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], MaxResults: 1000, NextToken })),
    );
    for (const s of out.Snapshots ?? []) {
      if (!s.SnapshotId) continue;
      snapshots.push({
        snapshotId: s.SnapshotId,
        ...(s.Description !== undefined ? { description: s.Description } : {}),
        tags: Object.fromEntries((s.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? ''])),
        startTime: (s.StartTime ?? new Date(0)).toISOString(),
        sizeGiB: s.VolumeSize ?? 0,
      });
    }
    NextToken = out.NextToken;
  } while (NextToken);
  return snapshots;
}

/** Every registered image of the account (disabled and deprecated too), and the snapshots they use. */
export async function ownImages(
  ec2: EC2Client,
  describe: Describe,
): Promise<{ used: Set<string>; registered: Set<string> }> {
  const used = new Set<string>();
  const registered = new Set<string>();
  let NextToken: string | undefined;
  do {
    const out = await describe(() =>
      ec2.send(
        new DescribeImagesCommand({
          Owners: ['self'],
          IncludeDeprecated: true,
          IncludeDisabled: true,
          MaxResults: 1000,
          NextToken,
        }),
      ),
    );
    for (const image of out.Images ?? []) {
      if (image.ImageId) registered.add(image.ImageId);
      for (const m of image.BlockDeviceMappings ?? []) if (m.Ebs?.SnapshotId) used.add(m.Ebs.SnapshotId);
    }
    NextToken = out.NextToken;
  } while (NextToken);
  return { used, registered };
}

/** Of these AMIs, the ones DescribeImages (any owner, by filter) does not know: gone. */
export async function confirmGone(ec2: EC2Client, describe: Describe, imageIds: string[]): Promise<Set<string>> {
  const found = new Set((await describeImagesById(ec2, imageIds, describe)).map((i) => i.ImageId));
  return new Set(imageIds.filter((id) => !found.has(id)));
}

/** Whether a snapshot has any createVolumePermission (shared with an account, or public). */
export async function isShared(ec2: EC2Client, describe: Describe, snapshotId: string): Promise<boolean> {
  const out = await describe(() =>
    ec2.send(new DescribeSnapshotAttributeCommand({ SnapshotId: snapshotId, Attribute: 'createVolumePermission' })),
  );
  return (out.CreateVolumePermissions ?? []).length > 0;
}

/** DeleteSnapshot, paced as a destructive call. */
export async function deleteSnapshot(ec2: EC2Client, pacer: TokenBucketPacer, snapshotId: string): Promise<void> {
  await pacer.call('destructive', () => ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })));
}
