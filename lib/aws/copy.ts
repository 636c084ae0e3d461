import {
  CopyImageCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  paginateDescribeSnapshots,
  type EC2Client,
  type TagSpecification,
} from '@aws-sdk/client-ec2';
import type { ImageRecord } from '../domain/image.ts';
import { TAG } from '../domain/tags.ts';
import { listImages } from './images.ts';
import { awsErrorName, IMAGE_GONE_ERRORS, isAwsError } from '../domain/errors.ts';

/** What the copy adapter calls, for serverless.yml's least-privilege statements (kms: the copy's re-encryption). */
export const REQUIRED_PERMISSIONS = [
  'ec2:CopyImage',
  'ec2:CreateTags',
  'ec2:DescribeImages',
  'ec2:DescribeSnapshots',
  'ec2:DeregisterImage',
  'ec2:DeleteSnapshot',
  'kms:CreateGrant',
  'kms:Decrypt',
  'kms:DescribeKey',
  'kms:Encrypt',
  'kms:GenerateDataKeyWithoutPlaintext',
  'kms:ReEncryptFrom',
  'kms:ReEncryptTo',
] as const;

/** One image by id, any state (`undefined` when EC2 no longer knows it). */
export async function describeImage(ec2: EC2Client, region: string, imageId: string): Promise<ImageRecord | undefined> {
  try {
    const [image] = await listImages(ec2, region, { imageIds: [imageId] });
    return image;
  } catch (error) {
    if (isAwsError(error, ...IMAGE_GONE_ERRORS)) return undefined;
    throw error;
  }
}

/** Copies of a source image in a region, found by their provenance tags: pending ones too (tags are set at creation). */
export async function findCopies(
  ec2: EC2Client,
  region: string,
  sourceRegion: string,
  sourceImageId: string,
): Promise<ImageRecord[]> {
  return listImages(ec2, region, {
    owners: ['self'],
    filters: { [`tag:${TAG.sourceImageId}`]: [sourceImageId], [`tag:${TAG.sourceRegion}`]: [sourceRegion] },
  });
}

/** Owned images with this exact name in a region (names are unique per account and region). */
export async function findImagesByName(ec2: EC2Client, region: string, name: string): Promise<ImageRecord[]> {
  return listImages(ec2, region, { owners: ['self'], filters: { name: [name] } });
}

export interface CopyRequest {
  sourceRegion: string;
  sourceImageId: string;
  name: string;
  description?: string;
  /** Re-encrypt under this key (EBS sources); omitted for instance-store sources, whose encryption cannot change. */
  kmsKeyId?: string;
  clientToken: string;
  tags: Record<string, string>;
  /** Tag the copy's snapshots at creation too (EBS sources). */
  tagSnapshots: boolean;
  completionMinutes?: number;
}

/** CopyImage, called in the destination region. Returns the new (pending) image's id; EC2 errors pass through by name. */
export async function copyImage(ec2: EC2Client, request: CopyRequest): Promise<string> {
  const tags = Object.entries(request.tags).map(([Key, Value]) => ({ Key, Value }));
  const specs: TagSpecification[] = [{ ResourceType: 'image', Tags: tags }];
  if (request.tagSnapshots) specs.push({ ResourceType: 'snapshot', Tags: tags });
  const out = await ec2.send(
    new CopyImageCommand({
      SourceRegion: request.sourceRegion,
      SourceImageId: request.sourceImageId,
      Name: request.name,
      Description: request.description?.slice(0, 255),
      ClientToken: request.clientToken,
      TagSpecifications: specs,
      ...(request.kmsKeyId ? { Encrypted: true, KmsKeyId: request.kmsKeyId } : {}),
      ...(request.completionMinutes ? { SnapshotCopyCompletionDurationMinutes: request.completionMinutes } : {}),
    }),
  );
  if (!out.ImageId) throw new Error('CopyImage returned no ImageId');
  return out.ImageId;
}

export interface RemovalReport {
  deregistered: string[];
  snapshotsDeleted: string[];
  /** Snapshots that could not be deleted and why (`InvalidSnapshot.InUse`: another image still uses it, so it stays). */
  problems: string[];
}

/**
 * Removes a copy and its snapshots: DeregisterImage with DeleteAssociatedSnapshots, then DeleteSnapshot for any
 * snapshot EC2 did not delete. Idempotent: an image or snapshot already gone counts as removed.
 */
export async function removeCopy(
  ec2: EC2Client,
  region: string,
  imageId: string,
  knownSnapshotIds: string[] = [],
): Promise<RemovalReport> {
  const report: RemovalReport = { deregistered: [], snapshotsDeleted: [], problems: [] };
  const leftovers = new Set(knownSnapshotIds);
  try {
    const out = await ec2.send(new DeregisterImageCommand({ ImageId: imageId, DeleteAssociatedSnapshots: true }));
    report.deregistered.push(imageId);
    for (const result of out.DeleteSnapshotResults ?? []) {
      if (!result.SnapshotId) continue;
      if (result.ReturnCode === 'success') {
        report.snapshotsDeleted.push(result.SnapshotId);
        leftovers.delete(result.SnapshotId);
      } else {
        leftovers.add(result.SnapshotId);
      }
    }
  } catch (error) {
    if (!isAwsError(error, ...IMAGE_GONE_ERRORS)) throw error;
    report.deregistered.push(imageId);
  }
  for (const snapshotId of leftovers) await deleteSnapshot(ec2, snapshotId, report);
  return report;
}

/** Snapshots a copy of this source left behind (tagged at creation) that no registered image uses any more. */
export async function deleteLeftoverSnapshots(
  ec2: EC2Client,
  sourceRegion: string,
  sourceImageId: string,
  report: RemovalReport,
  keep: ReadonlySet<string> = new Set(),
): Promise<void> {
  const pages = paginateDescribeSnapshots(
    { client: ec2, pageSize: 1000 },
    {
      OwnerIds: ['self'],
      Filters: [
        { Name: `tag:${TAG.sourceImageId}`, Values: [sourceImageId] },
        { Name: `tag:${TAG.sourceRegion}`, Values: [sourceRegion] },
      ],
    },
  );
  for await (const page of pages) {
    for (const snapshot of page.Snapshots ?? []) {
      const id = snapshot.SnapshotId;
      if (id && !keep.has(id) && !report.snapshotsDeleted.includes(id)) await deleteSnapshot(ec2, id, report);
    }
  }
}

async function deleteSnapshot(ec2: EC2Client, snapshotId: string, report: RemovalReport): Promise<void> {
  try {
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
    report.snapshotsDeleted.push(snapshotId);
  } catch (error) {
    const code = awsErrorName(error);
    if (code === 'InvalidSnapshot.NotFound') report.snapshotsDeleted.push(snapshotId);
    else if (code === 'InvalidSnapshot.InUse') report.problems.push(`${snapshotId}: in use by another image, kept`);
    else throw error;
  }
}
