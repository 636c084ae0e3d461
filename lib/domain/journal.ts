/**
 * The deletion journal: what must be deleted after an image is deregistered, recorded before DeregisterImage so
 * that nothing leaks when a deletion fails or a run dies half-way. Tags are the database: an EBS image's snapshots
 * carry `ami-dr:journal=<imageId>`; an instance-store image's bundle gets a journal object in its own bucket,
 * `ami-dr/journal/<imageId>.json`, naming the manifest and parts. Every run finishes the open entries of images
 * that are gone. These are the pure parts: names, the journal object's shape, and what an entry's state means.
 */

/** Tag key on journaled snapshots; its value is the image the snapshot is to be deleted after. */
export const JOURNAL_TAG = 'ami-dr:journal';
/** Key prefix of journal objects, in the bundle's own bucket. */
export const JOURNAL_PREFIX = 'ami-dr/journal/';

const IMAGE_ID = /^ami-[0-9a-f]{8,17}$/;

export const journalKey = (imageId: string): string => `${JOURNAL_PREFIX}${imageId}.json`;

/** The image a journal object's key names, or undefined for a key that is not a journal object. */
export function imageOfJournalKey(key: string): string | undefined {
  if (!key.startsWith(JOURNAL_PREFIX) || !key.endsWith('.json')) return undefined;
  const imageId = key.slice(JOURNAL_PREFIX.length, -'.json'.length);
  return IMAGE_ID.test(imageId) ? imageId : undefined;
}

/** What a journal object holds: the bundle's keys, parts first and the manifest last (the order they go in). */
export interface BundleJournal {
  version: 1;
  imageId: string;
  bucket: string;
  manifestKey: string;
  partKeys: string[];
  bytes?: number;
  journaledAt: string;
}

/** A journal object's text, checked: only an object naming keys in its own bucket for its own image is trusted. */
export function parseBundleJournal(text: string, bucket: string, key: string): BundleJournal {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new InvalidJournalError(`journal s3://${bucket}/${key} is not JSON`);
  }
  const j = doc as Partial<BundleJournal>;
  const isKey = (k: unknown): k is string => typeof k === 'string' && k.length > 0 && !k.startsWith(JOURNAL_PREFIX);
  if (
    j.version !== 1 ||
    j.imageId !== imageOfJournalKey(key) ||
    j.bucket !== bucket ||
    !isKey(j.manifestKey) ||
    !Array.isArray(j.partKeys) ||
    !j.partKeys.every(isKey)
  )
    throw new InvalidJournalError(
      `journal s3://${bucket}/${key} does not describe a bundle of its image in its bucket`,
    );
  return j as BundleJournal;
}

export class InvalidJournalError extends Error {
  override name = 'InvalidJournalError';
}

/** One journal entry still open after a run: the next run (or a later pass of this one) finishes it. */
export type OpenJournalEntry =
  | { kind: 'snapshot'; imageId: string; snapshotId: string; sizeGiB: number; reason: string }
  | {
      kind: 'bundle';
      imageId: string;
      bucket: string;
      manifestKey: string;
      keys: number;
      bytes?: number;
      reason: string;
    };

/** What finishing the journal did in one run. */
export interface JournalSummary {
  /** Entries finished: snapshots deleted (or found gone), bundles deleted, by this run. */
  snapshotsDeleted: number;
  snapshotGibFreed: number;
  /** Snapshots another image still uses: their journal tag was dropped, the snapshot kept. */
  snapshotsReleased: number;
  bundlesDeleted: number;
  bundleBytesFreed: number;
  /** Entries still open at the end of the run (their image is gone, their deletion failed or was not tried). */
  open: OpenJournalEntry[];
  /** Buckets searched for journal objects. */
  buckets: string[];
  /** Problems that are not one entry's (a bucket that could not be listed, ...). */
  errors: { code: string; message: string }[];
  /** Calls made, mutating ones counted apart. */
  calls: { describe: number; mutating: number };
}

export const emptyJournalSummary = (buckets: string[] = []): JournalSummary => ({
  snapshotsDeleted: 0,
  snapshotGibFreed: 0,
  snapshotsReleased: 0,
  bundlesDeleted: 0,
  bundleBytesFreed: 0,
  open: [],
  buckets,
  errors: [],
  calls: { describe: 0, mutating: 0 },
});

/** Two passes of one run as one: what both finished, what the later one left open. */
export function mergeJournalSummaries(first: JournalSummary, last: JournalSummary): JournalSummary {
  return {
    snapshotsDeleted: first.snapshotsDeleted + last.snapshotsDeleted,
    snapshotGibFreed: first.snapshotGibFreed + last.snapshotGibFreed,
    snapshotsReleased: first.snapshotsReleased + last.snapshotsReleased,
    bundlesDeleted: first.bundlesDeleted + last.bundlesDeleted,
    bundleBytesFreed: first.bundleBytesFreed + last.bundleBytesFreed,
    open: last.open,
    buckets: [...new Set([...first.buckets, ...last.buckets])].sort(),
    errors: [...first.errors, ...last.errors],
    calls: {
      describe: first.calls.describe + last.calls.describe,
      mutating: first.calls.mutating + last.calls.mutating,
    },
  };
}

/** What a DeleteSnapshot answer means for a journaled snapshot. */
export type SnapshotEntryOutcome = 'deleted' | 'in-use' | 'gone' | 'failed';

export function snapshotDeleteOutcome(errorName: string | undefined): SnapshotEntryOutcome {
  if (errorName === undefined) return 'deleted';
  if (errorName === 'InvalidSnapshot.InUse') return 'in-use';
  if (errorName === 'InvalidSnapshot.NotFound') return 'gone';
  return 'failed';
}

/** GiB still to free in the journal's open entries. */
export function openGiB(open: readonly OpenJournalEntry[]): number {
  return open.reduce((n, e) => n + (e.kind === 'snapshot' ? e.sizeGiB : (e.bytes ?? 0) / 1024 ** 3), 0);
}
