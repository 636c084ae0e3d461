import {
  DeleteSnapshotCommand,
  DescribeImagesCommand,
  DescribeSnapshotAttributeCommand,
  DescribeSnapshotsCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { awsErrorName, isAwsError } from '../domain/errors.ts';
import {
  amiOfDescription,
  decideSweep,
  type OrphanSweepResult,
  type SweptSnapshot,
  sweepSuspects,
} from '../domain/orphan-sweep.ts';
import { TokenBucketPacer } from './pacer.ts';

/**
 * The orphan sweep on AWS: reads the account's snapshots and images, proves the named AMIs gone (DescribeImages by
 * filter) and the suspects unshared (DescribeSnapshotAttribute), then, unless dry-run, deletes the candidates.
 */

export const REQUIRED_PERMISSIONS = [
  'ec2:DescribeSnapshots',
  'ec2:DescribeImages',
  'ec2:DescribeSnapshotAttribute',
  'ec2:DeleteSnapshot',
] as const;

export interface SweepOptions {
  ec2: EC2Client;
  pacer?: TokenBucketPacer;
  now: number;
  minAgeDays: number;
  /** Delete nothing (default true). */
  dryRun?: boolean;
  pricePerGbMonth: number;
  deadline?: number;
  signal?: AbortSignal;
}

export async function sweepOrphans(options: SweepOptions): Promise<OrphanSweepResult> {
  const pacer = options.pacer ?? new TokenBucketPacer();
  const calls = { describe: 0, mutating: 0 };
  const describe = <T>(fn: () => Promise<T>): Promise<T> => {
    calls.describe++;
    return pacer.call('describe', fn);
  };
  const snapshots = await ownSnapshots(options.ec2, describe);
  const { used, registered } = await ownImages(options.ec2, describe);
  const suspects = sweepSuspects(snapshots, {
    usedSnapshotIds: used,
    now: options.now,
    minAgeDays: options.minAgeDays,
  });
  const named = [...new Set(suspects.map((s) => amiOfDescription(s.description)!))].filter((id) => !registered.has(id));
  const gone = await confirmGone(options.ec2, describe, named);
  const shared = new Set<string>();
  for (const s of suspects) {
    if (!gone.has(amiOfDescription(s.description)!)) continue;
    const out = await describe(() =>
      options.ec2.send(
        new DescribeSnapshotAttributeCommand({ SnapshotId: s.snapshotId, Attribute: 'createVolumePermission' }),
      ),
    );
    if ((out.CreateVolumePermissions ?? []).length > 0) shared.add(s.snapshotId);
  }
  const facts = {
    usedSnapshotIds: used,
    goneImageIds: gone,
    sharedSnapshotIds: shared,
    now: options.now,
    minAgeDays: options.minAgeDays,
  };
  const { candidates, keptByReason } = decideSweep(snapshots, facts);
  const dryRun = options.dryRun !== false;
  const result: OrphanSweepResult = {
    dryRun,
    minAgeDays: options.minAgeDays,
    scanned: snapshots.length,
    candidates,
    keptByReason,
    deleted: [],
    errors: [],
    gib: 0,
    estimatedMonthlySaving: 0,
    calls,
  };
  const deadline = options.deadline ?? Number.POSITIVE_INFINITY;
  for (const c of dryRun ? [] : candidates) {
    if (options.signal?.aborted || pacer.now() > deadline) break;
    try {
      calls.mutating++;
      await pacer.call('destructive', () => options.ec2.send(new DeleteSnapshotCommand({ SnapshotId: c.snapshotId })));
      result.deleted.push(c.snapshotId);
    } catch (error) {
      if (isAwsError(error, 'InvalidSnapshot.NotFound')) continue;
      result.errors.push({
        snapshotId: c.snapshotId,
        code: awsErrorName(error) ?? 'Error',
        message: (error as Error).message,
      });
    }
  }
  const deleted = new Set(result.deleted);
  result.gib = candidates.filter((c) => dryRun || deleted.has(c.snapshotId)).reduce((n, c) => n + c.sizeGiB, 0);
  result.estimatedMonthlySaving = Math.round(result.gib * options.pricePerGbMonth * 100) / 100;
  return result;
}

type Describe = <T>(fn: () => Promise<T>) => Promise<T>;

async function ownSnapshots(ec2: EC2Client, describe: Describe): Promise<SweptSnapshot[]> {
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
async function ownImages(ec2: EC2Client, describe: Describe): Promise<{ used: Set<string>; registered: Set<string> }> {
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
async function confirmGone(ec2: EC2Client, describe: Describe, imageIds: string[]): Promise<Set<string>> {
  const found = new Set<string>();
  for (let i = 0; i < imageIds.length; i += 200) {
    let NextToken: string | undefined;
    do {
      const out = await describe(() =>
        ec2.send(
          new DescribeImagesCommand({
            Filters: [{ Name: 'image-id', Values: imageIds.slice(i, i + 200) }],
            IncludeDeprecated: true,
            IncludeDisabled: true,
            MaxResults: 1000,
            NextToken,
          }),
        ),
      );
      for (const image of out.Images ?? []) if (image.ImageId) found.add(image.ImageId);
      NextToken = out.NextToken;
    } while (NextToken);
  }
  return new Set(imageIds.filter((id) => !found.has(id)));
}
