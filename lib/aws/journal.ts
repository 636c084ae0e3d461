import {
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeleteTagsCommand,
  DescribeSnapshotsCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { awsErrorName, isAwsError } from '../domain/errors.ts';
import { type BundleJournal, imageOfJournalKey, JOURNAL_PREFIX, JOURNAL_TAG, journalKey } from '../domain/journal.ts';
import { deleteBundle, type BundleLocation, type BundleManifest } from './bundles.ts';
import { describeImagesById } from './images.ts';
import type { TokenBucketPacer } from './pacer.ts';

/**
 * The deletion journal's calls (lib/domain/journal.ts says what it is; lib/workflows/retention-journal.ts decides
 * when each is made): recording an image's snapshots (a tag) and bundle (a journal object in the bundle's bucket)
 * before DeregisterImage, reading the open entries back, and the deletions that finish one.
 */

export const REQUIRED_PERMISSIONS = [
  'ec2:CreateTags',
  'ec2:DeleteTags',
  'ec2:DescribeSnapshots',
  'ec2:DescribeImages',
  'ec2:DeleteSnapshot',
  's3:PutObject',
  's3:GetObject',
  's3:DeleteObject',
  's3:ListBucket',
] as const;

export interface JournalEntry {
  imageId: string;
  snapshotIds: string[];
  bundle?: { location: BundleLocation; manifest: BundleManifest };
}

/** Records what must go after `entry.imageId`: one CreateTags for all its snapshots, one PutObject for its bundle. */
export async function writeJournal(
  ec2: EC2Client,
  s3: S3Client,
  entry: JournalEntry,
  pacer: TokenBucketPacer,
  now: number,
): Promise<number> {
  let calls = 0;
  if (entry.snapshotIds.length > 0) {
    calls++;
    await pacer.call('tags', () =>
      ec2.send(
        new CreateTagsCommand({
          Resources: entry.snapshotIds,
          Tags: [{ Key: JOURNAL_TAG, Value: entry.imageId }],
        }),
      ),
    );
  }
  if (entry.bundle) {
    const { location, manifest } = entry.bundle;
    const journal: BundleJournal = {
      version: 1,
      imageId: entry.imageId,
      bucket: location.bucket,
      manifestKey: location.manifestKey,
      partKeys: manifest.partKeys,
      ...(manifest.bundledBytes !== undefined ? { bytes: manifest.bundledBytes } : {}),
      journaledAt: new Date(now).toISOString(),
    };
    calls++;
    await s3.send(
      new PutObjectCommand({
        Bucket: location.bucket,
        Key: journalKey(entry.imageId),
        Body: JSON.stringify(journal),
        ContentType: 'application/json',
      }),
    );
  }
  return calls;
}

/** Takes an entry back (the image was not deregistered and will not be by this run). Best effort: returns calls. */
export async function withdrawJournal(
  ec2: EC2Client,
  s3: S3Client,
  entry: JournalEntry,
  pacer: TokenBucketPacer,
): Promise<number> {
  let calls = 0;
  try {
    if (entry.snapshotIds.length > 0) {
      calls++;
      await pacer.call('tags', () =>
        ec2.send(new DeleteTagsCommand({ Resources: entry.snapshotIds, Tags: [{ Key: JOURNAL_TAG }] })),
      );
    }
    if (entry.bundle) calls += await closeBundleJournal(s3, entry.bundle.location.bucket, entry.imageId);
  } catch {
    // An entry left behind is harmless: it is only acted on once its image is gone.
  }
  return calls;
}

/** The bundle is deleted: its journal object goes. */
export async function closeBundleJournal(s3: S3Client, bucket: string, imageId: string): Promise<number> {
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: journalKey(imageId) }));
  return 1;
}

/** A snapshot carrying the journal tag: the image it is to be deleted after. */
export interface JournaledSnapshot {
  imageId: string;
  snapshotId: string;
  sizeGiB: number;
}

/** Every snapshot of the account's region carrying the journal tag (DescribeSnapshots by tag-key); calls made. */
export async function listJournaledSnapshots(
  ec2: EC2Client,
  pacer: TokenBucketPacer,
): Promise<{ snapshots: JournaledSnapshot[]; calls: number }> {
  const snapshots: JournaledSnapshot[] = [];
  let calls = 0;
  let NextToken: string | undefined;
  do {
    calls++;
    const out = await pacer.call('describe', () =>
      ec2.send(
        new DescribeSnapshotsCommand({
          OwnerIds: ['self'],
          Filters: [{ Name: 'tag-key', Values: [JOURNAL_TAG] }],
          MaxResults: 1000,
          NextToken,
        }),
      ),
    );
    for (const s of out.Snapshots ?? []) {
      const imageId = s.Tags?.find((t) => t.Key === JOURNAL_TAG)?.Value;
      if (s.SnapshotId && imageId) snapshots.push({ imageId, snapshotId: s.SnapshotId, sizeGiB: s.VolumeSize ?? 0 });
    }
    NextToken = out.NextToken;
  } while (NextToken);
  return { snapshots, calls };
}

/** The journal objects of one bucket, as text (ListObjectsV2 of the journal prefix, then GetObject each); calls made. */
export async function readBundleJournals(
  s3: S3Client,
  bucket: string,
): Promise<{ objects: { key: string; imageId: string; text: string }[]; calls: number }> {
  const objects: { key: string; imageId: string; text: string }[] = [];
  let calls = 0;
  let ContinuationToken: string | undefined;
  do {
    calls++;
    const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: JOURNAL_PREFIX, ContinuationToken }));
    for (const o of out.Contents ?? []) {
      const imageId = o.Key ? imageOfJournalKey(o.Key) : undefined;
      if (!o.Key || !imageId) continue;
      calls++;
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key }));
      objects.push({ key: o.Key, imageId, text: (await got.Body?.transformToString('utf8')) ?? '' });
    }
    ContinuationToken = out.IsTruncated ? out.NextContinuationToken : undefined;
  } while (ContinuationToken);
  return { objects, calls };
}

/** Which of these images are still registered (DescribeImages by filter, 200 ids a call); calls made. */
export async function registeredImages(
  ec2: EC2Client,
  pacer: TokenBucketPacer,
  imageIds: readonly string[],
): Promise<{ registered: Set<string>; calls: number }> {
  let calls = 0;
  const images = await describeImagesById(ec2, imageIds, (send) => {
    calls++;
    return pacer.call('describe', send);
  });
  const registered = new Set(images.flatMap((i) => (i.ImageId && i.State !== 'deregistered' ? [i.ImageId] : [])));
  return { registered, calls };
}

/** DeleteSnapshot: undefined when deleted, else the error's name and message (never throws). */
export async function deleteJournaledSnapshot(
  ec2: EC2Client,
  pacer: TokenBucketPacer,
  snapshotId: string,
): Promise<{ errorName: string; message: string } | undefined> {
  try {
    await pacer.call('destructive', () => ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })));
    return undefined;
  } catch (error) {
    return { errorName: awsErrorName(error) ?? 'Error', message: (error as Error).message };
  }
}

/** Drops the journal tag from a snapshot another image still uses (a snapshot gone meanwhile is fine). */
export async function releaseJournaledSnapshot(
  ec2: EC2Client,
  pacer: TokenBucketPacer,
  snapshotId: string,
): Promise<void> {
  try {
    await pacer.call('tags', () =>
      ec2.send(new DeleteTagsCommand({ Resources: [snapshotId], Tags: [{ Key: JOURNAL_TAG }] })),
    );
  } catch (error) {
    if (!isAwsError(error, 'InvalidSnapshot.NotFound')) throw error;
  }
}

/**
 * A journaled bundle: its parts and manifest (unless the manifest is gone: deleted already), then the journal
 * object. Whether it deleted the bundle, and the mutating calls made (besides one HeadObject); throws what S3
 * refused.
 */
export async function deleteJournaledBundle(
  s3: S3Client,
  journal: BundleJournal,
): Promise<{ bundleDeleted: boolean; calls: number }> {
  let calls = 0;
  // The manifest goes last: without it the bundle was deleted already (only the journal object was left).
  const present = await s3
    .send(new HeadObjectCommand({ Bucket: journal.bucket, Key: journal.manifestKey }))
    .then(() => true)
    .catch((error: unknown) => {
      if (isAwsError(error, 'NotFound', 'NoSuchKey')) return false;
      throw error;
    });
  if (present) {
    const slash = journal.manifestKey.lastIndexOf('/');
    const location = {
      bucket: journal.bucket,
      manifestKey: journal.manifestKey,
      prefix: slash < 0 ? '' : journal.manifestKey.slice(0, slash + 1),
    };
    calls += (await deleteBundle(s3, location, { partKeys: journal.partKeys })).calls;
  }
  calls += await closeBundleJournal(s3, journal.bucket, journal.imageId);
  return { bundleDeleted: present, calls };
}
