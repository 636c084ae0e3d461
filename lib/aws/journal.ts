import {
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeleteTagsCommand,
  DescribeImagesCommand,
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
import {
  type BundleJournal,
  emptyJournalSummary,
  imageOfJournalKey,
  JOURNAL_PREFIX,
  JOURNAL_TAG,
  journalKey,
  type JournalSummary,
  type OpenJournalEntry,
  parseBundleJournal,
  snapshotDeleteOutcome,
} from '../domain/journal.ts';
import { deleteBundle, type BundleLocation, type BundleManifest } from './bundles.ts';
import { TokenBucketPacer } from './pacer.ts';

/**
 * The deletion journal on AWS (lib/domain/journal.ts says what it is): recording an image's snapshots (a tag) and
 * bundle (a journal object in the bundle's bucket) before DeregisterImage, and finishing the entries of images
 * that are gone: delete the snapshot (in use by another image: drop the tag, keep it), delete the bundle's keys
 * then the journal object. Entries of images still registered are not touched: the journal only ever deletes
 * what belonged to an image that is gone.
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

export interface FinishJournalOptions {
  ec2: EC2Client;
  s3: S3Client;
  /** Buckets to look for journal objects in. */
  buckets: readonly string[];
  pacer?: TokenBucketPacer;
  /** List only: report the open entries, delete nothing. */
  dryRun?: boolean;
  /** Passes over the failed entries (default 3), waiting backoffMs, then twice that, ... between them. */
  attempts?: number;
  backoffMs?: number;
  /** Epoch ms (pacer's clock) after which no new deletion starts. */
  deadline?: number;
  signal?: AbortSignal;
}

interface SnapshotTodo {
  kind: 'snapshot';
  imageId: string;
  snapshotId: string;
  sizeGiB: number;
}
interface BundleTodo {
  kind: 'bundle';
  imageId: string;
  journal: BundleJournal;
}
type Todo = SnapshotTodo | BundleTodo;

/**
 * Finishes the journal's open entries whose image is gone, retrying failures with back-off within the call; what
 * is still open at the end is returned for the report ("left for the next run").
 */
export async function finishJournal(options: FinishJournalOptions): Promise<JournalSummary> {
  const pacer = options.pacer ?? new TokenBucketPacer();
  const summary = emptyJournalSummary([...options.buckets].sort());
  const found = [
    ...(await journaledSnapshots(options.ec2, pacer, summary)),
    ...(await journaledBundles(options, summary)),
  ];
  const gone = await imagesGone(options.ec2, pacer, [...new Set(found.map((t) => t.imageId))], summary);
  let todo = found.filter((t) => gone.has(t.imageId));
  const reasons = new Map<Todo, string>();
  const attempts = options.dryRun ? 0 : Math.max(1, options.attempts ?? 3);
  for (let attempt = 0; attempt < attempts && todo.length > 0; attempt++) {
    if (attempt > 0) await pacer.wait((options.backoffMs ?? 1000) * 2 ** (attempt - 1));
    const failed: Todo[] = [];
    for (const t of todo) {
      if (options.signal?.aborted || pacer.now() > (options.deadline ?? Number.POSITIVE_INFINITY)) {
        reasons.set(t, reasons.get(t) ?? 'not tried: the run stopped');
        failed.push(t);
        continue;
      }
      const error =
        t.kind === 'snapshot'
          ? await finishSnapshot(options.ec2, pacer, t, summary)
          : await finishBundle(options.s3, t, summary);
      if (error !== undefined) {
        reasons.set(t, error);
        failed.push(t);
      }
    }
    todo = failed;
  }
  summary.open = todo.map((t) => openEntry(t, options.dryRun ? 'image gone: to delete' : (reasons.get(t) ?? 'open')));
  return summary;
}

function openEntry(t: Todo, reason: string): OpenJournalEntry {
  return t.kind === 'snapshot'
    ? { kind: 'snapshot', imageId: t.imageId, snapshotId: t.snapshotId, sizeGiB: t.sizeGiB, reason }
    : {
        kind: 'bundle',
        imageId: t.imageId,
        bucket: t.journal.bucket,
        manifestKey: t.journal.manifestKey,
        keys: t.journal.partKeys.length + 1,
        ...(t.journal.bytes !== undefined ? { bytes: t.journal.bytes } : {}),
        reason,
      };
}

async function journaledSnapshots(
  ec2: EC2Client,
  pacer: TokenBucketPacer,
  summary: JournalSummary,
): Promise<SnapshotTodo[]> {
  const todo: SnapshotTodo[] = [];
  let NextToken: string | undefined;
  do {
    summary.calls.describe++;
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
      if (s.SnapshotId && imageId)
        todo.push({ kind: 'snapshot', imageId, snapshotId: s.SnapshotId, sizeGiB: s.VolumeSize ?? 0 });
    }
    NextToken = out.NextToken;
  } while (NextToken);
  return todo;
}

async function journaledBundles(options: FinishJournalOptions, summary: JournalSummary): Promise<BundleTodo[]> {
  const todo: BundleTodo[] = [];
  for (const bucket of options.buckets) {
    try {
      let ContinuationToken: string | undefined;
      do {
        summary.calls.describe++;
        const out = await options.s3.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: JOURNAL_PREFIX, ContinuationToken }),
        );
        for (const o of out.Contents ?? []) {
          if (!o.Key || !imageOfJournalKey(o.Key)) continue;
          summary.calls.describe++;
          const got = await options.s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key }));
          const text = (await got.Body?.transformToString('utf8')) ?? '';
          try {
            todo.push({
              kind: 'bundle',
              imageId: imageOfJournalKey(o.Key)!,
              journal: parseBundleJournal(text, bucket, o.Key),
            });
          } catch (error) {
            summary.errors.push({ code: awsErrorName(error) ?? 'Error', message: (error as Error).message });
          }
        }
        ContinuationToken = out.IsTruncated ? out.NextContinuationToken : undefined;
      } while (ContinuationToken);
    } catch (error) {
      summary.errors.push({
        code: awsErrorName(error) ?? 'Error',
        message: `could not read the journal in s3://${bucket}/${JOURNAL_PREFIX}: ${(error as Error).message}`,
      });
    }
  }
  return todo;
}

/** Which of these images are no longer registered (DescribeImages by filter, 200 ids a call). */
async function imagesGone(
  ec2: EC2Client,
  pacer: TokenBucketPacer,
  imageIds: string[],
  summary: JournalSummary,
): Promise<Set<string>> {
  const registered = new Set<string>();
  for (let i = 0; i < imageIds.length; i += 200) {
    let NextToken: string | undefined;
    do {
      summary.calls.describe++;
      const out = await pacer.call('describe', () =>
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
      for (const image of out.Images ?? [])
        if (image.ImageId && image.State !== 'deregistered') registered.add(image.ImageId);
      NextToken = out.NextToken;
    } while (NextToken);
  }
  return new Set(imageIds.filter((id) => !registered.has(id)));
}

/** One journaled snapshot of a gone image: deleted, or released if another image uses it. Undefined: done. */
async function finishSnapshot(
  ec2: EC2Client,
  pacer: TokenBucketPacer,
  t: SnapshotTodo,
  summary: JournalSummary,
): Promise<string | undefined> {
  let errorName: string | undefined;
  let message = '';
  try {
    summary.calls.mutating++;
    await pacer.call('destructive', () => ec2.send(new DeleteSnapshotCommand({ SnapshotId: t.snapshotId })));
  } catch (error) {
    errorName = awsErrorName(error) ?? 'Error';
    message = (error as Error).message;
  }
  const outcome = snapshotDeleteOutcome(errorName);
  if (outcome === 'deleted') {
    summary.snapshotsDeleted++;
    summary.snapshotGibFreed += t.sizeGiB;
  } else if (outcome === 'in-use') {
    try {
      summary.calls.mutating++;
      await pacer.call('tags', () =>
        ec2.send(new DeleteTagsCommand({ Resources: [t.snapshotId], Tags: [{ Key: JOURNAL_TAG }] })),
      );
      summary.snapshotsReleased++;
    } catch (error) {
      if (!isAwsError(error, 'InvalidSnapshot.NotFound'))
        return `in use by another image; the journal tag could not be dropped: ${awsErrorName(error) ?? 'Error'}`;
    }
  } else if (outcome === 'failed') {
    return `DeleteSnapshot failed: ${errorName}: ${message}`;
  }
  return undefined;
}

/** One journaled bundle of a gone image: its parts, its manifest, then the journal object. Undefined: done. */
async function finishBundle(s3: S3Client, t: BundleTodo, summary: JournalSummary): Promise<string | undefined> {
  const { journal } = t;
  try {
    // The manifest goes last: without it the bundle was deleted already (only the journal object was left).
    summary.calls.describe++;
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
      const { calls } = await deleteBundle(s3, location, { partKeys: journal.partKeys });
      summary.calls.mutating += calls;
      summary.bundlesDeleted++;
      summary.bundleBytesFreed += journal.bytes ?? 0;
    }
    summary.calls.mutating += await closeBundleJournal(s3, journal.bucket, t.imageId);
    return undefined;
  } catch (error) {
    return `bundle s3://${journal.bucket}/${journal.manifestKey}: ${awsErrorName(error) ?? 'Error'}: ${(error as Error).message}`;
  }
}
