import { type Clients, ec2Client, s3Client } from '../aws/clients.ts';
import {
  deleteJournaledBundle,
  deleteJournaledSnapshot,
  type JournaledSnapshot,
  listJournaledSnapshots,
  readBundleJournals,
  registeredImages,
  releaseJournaledSnapshot,
  REQUIRED_PERMISSIONS as JOURNAL_PERMISSIONS,
} from '../aws/journal.ts';
import type { TokenBucketPacer } from '../aws/pacer.ts';
import { awsErrorName, isDeadlineError } from '../domain/errors.ts';
import {
  type BundleJournal,
  emptyJournalSummary,
  type JournalSummary,
  mergeJournalSummaries,
  type OpenJournalEntry,
  parseBundleJournal,
  snapshotDeleteOutcome,
} from '../domain/journal.ts';
import type { OrphanSweepResult } from '../domain/orphan-sweep.ts';
import type { Policy } from '../domain/policy.ts';
import { REQUIRED_PERMISSIONS as SWEEP_PERMISSIONS, sweepOrphans } from './orphan-sweep.ts';

/**
 * The deletion journal's place in a retention run: a pass before the plan is applied finishes what earlier runs
 * left open; a pass after it finishes what this run could not (S3 or EC2 refused, DeregisterImage did not confirm),
 * with back-off; what is still open is reported as left for the next run. Then the orphan sweep, when turned on.
 * A dry-run only lists. Journal objects are looked for in retention.bundleBuckets, the only buckets the retention
 * role may touch (and the only ones whose bundles retention removes).
 */

export const REQUIRED_PERMISSIONS = [...new Set([...JOURNAL_PERMISSIONS, ...SWEEP_PERMISSIONS])];

export interface JournalPassOptions {
  clients: Clients;
  region: string;
  policy: Readonly<Policy>;
  pacer: TokenBucketPacer;
  dryRun: boolean;
  deadline?: number;
  signal?: AbortSignal;
  /** Back-off before the first retry of failed entries (doubling after); default 1 s. */
  journalBackoffMs?: number;
}

/** What the journal and the sweep did in one run, for the report. */
export interface RunJournal {
  journal: JournalSummary;
  orphanSweep?: OrphanSweepResult;
}

/** Before the apply: finishes the open entries found in the policy's bundle buckets. Never fails the run. */
export async function openRunJournal(o: JournalPassOptions): Promise<JournalSummary> {
  return pass(o);
}

/**
 * After the apply: one more pass, merged with the first, and the sweep (`sweepListOnly`: it deletes nothing). Once
 * the deadline has come or the run was stopped, neither: what is open stays for the next run.
 */
export async function closeRunJournal(
  o: JournalPassOptions & { now: number; sweepListOnly?: boolean },
  first: JournalSummary,
): Promise<RunJournal> {
  if (o.signal?.aborted || (o.deadline !== undefined && o.pacer.now() >= o.deadline)) {
    const stopped = {
      code: o.signal?.aborted ? 'Interrupted' : 'DeadlineReachedError',
      message: `the ${o.signal?.aborted ? 'run was stopped' : 'deadline came'} before the journal's last pass: open entries are left for the next run`,
    };
    return { journal: { ...first, errors: [...first.errors, stopped] } };
  }
  const journal = o.dryRun ? first : mergeJournalSummaries(first, await pass(o));
  const sweep = o.policy.retention.orphanSweep;
  if (!sweep.enabled) return { journal };
  const orphanSweep = await sweepOrphans({
    ec2: ec2Client(o.clients, o.region),
    pacer: o.pacer,
    now: o.now,
    minAgeDays: sweep.minAgeDays,
    dryRun: o.dryRun || sweep.dryRun || o.sweepListOnly === true,
    pricePerGbMonth: o.policy.retention.snapshotPricePerGbMonth,
    ...(o.deadline !== undefined ? { deadline: o.deadline } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  }).catch((error: unknown): OrphanSweepResult | undefined => {
    // The sweep is housekeeping: a sweep that cannot finish is reported, and the run's own work stands.
    journal.errors.push({ code: awsErrorName(error) ?? 'Error', message: `orphan sweep: ${(error as Error).message}` });
    return undefined;
  });
  return orphanSweep ? { journal, orphanSweep } : { journal };
}

async function pass(o: JournalPassOptions): Promise<JournalSummary> {
  const buckets = [...(o.policy.retention.bundleBuckets ?? [])];
  try {
    return await finishJournal({
      ec2: ec2Client(o.clients, o.region),
      s3: s3Client(o.clients, o.region),
      buckets,
      pacer: o.pacer,
      dryRun: o.dryRun,
      ...(o.journalBackoffMs !== undefined ? { backoffMs: o.journalBackoffMs } : {}),
      ...(o.deadline !== undefined ? { deadline: o.deadline } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    });
  } catch (error) {
    // The journal is read again by every run: one that cannot be read now is reported, not a reason to stop.
    const summary = emptyJournalSummary(buckets);
    summary.errors.push({
      code: awsErrorName(error) ?? 'Error',
      message: `could not read the deletion journal: ${(error as Error).message}`,
    });
    return summary;
  }
}

export interface FinishJournalOptions {
  ec2: Parameters<typeof listJournaledSnapshots>[0];
  s3: Parameters<typeof readBundleJournals>[0];
  /** Buckets to look for journal objects in. */
  buckets: readonly string[];
  pacer: TokenBucketPacer;
  /** List only: report the open entries, delete nothing. */
  dryRun?: boolean;
  /** Passes over the failed entries (default 3), waiting backoffMs, then twice that, ... between them. */
  attempts?: number;
  backoffMs?: number;
  /** Epoch ms (pacer's clock) after which no new deletion starts. */
  deadline?: number;
  signal?: AbortSignal;
}

type Todo = ({ kind: 'snapshot' } & JournaledSnapshot) | { kind: 'bundle'; imageId: string; journal: BundleJournal };

/**
 * Finishes the journal's open entries whose image is gone, retrying failures with back-off within the call; what
 * is still open at the end is returned for the report ("left for the next run"). Entries of images still
 * registered are not touched: the journal only ever deletes what belonged to an image that is gone.
 */
export async function finishJournal(options: FinishJournalOptions): Promise<JournalSummary> {
  const { pacer } = options;
  const summary = emptyJournalSummary([...options.buckets].sort());
  const listed = await listJournaledSnapshots(options.ec2, pacer);
  summary.calls.describe += listed.calls;
  const found: Todo[] = [
    ...listed.snapshots.map((s) => ({ kind: 'snapshot' as const, ...s })),
    ...(await journaledBundles(options, summary)),
  ];
  const ids = [...new Set(found.map((t) => t.imageId))];
  const { registered, calls } = await registeredImages(options.ec2, pacer, ids);
  summary.calls.describe += calls;
  let todo = found.filter((t) => !registered.has(t.imageId));
  const reasons = new Map<Todo, string>();
  const attempts = options.dryRun ? 0 : Math.max(1, options.attempts ?? 3);
  for (let attempt = 0; attempt < attempts && todo.length > 0; attempt++) {
    if (attempt > 0 && !(await backoff(options, attempt))) break;
    const failed: Todo[] = [];
    for (const t of todo) {
      const error = stopped(options)
        ? (reasons.get(t) ?? 'not tried: the run stopped')
        : t.kind === 'snapshot'
          ? await finishSnapshot(options, t, summary)
          : await finishBundle(options, t, summary);
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

const stopped = (o: FinishJournalOptions): boolean =>
  Boolean(o.signal?.aborted) || o.pacer.now() > (o.deadline ?? Number.POSITIVE_INFINITY);

/** Waits before pass `attempt`; false when the deadline comes first (the pass is not made). */
async function backoff(o: FinishJournalOptions, attempt: number): Promise<boolean> {
  try {
    await o.pacer.backoff((o.backoffMs ?? 1000) * 2 ** (attempt - 1));
    return true;
  } catch (error) {
    if (isDeadlineError(error)) return false;
    throw error;
  }
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

/** The journal objects of every bucket, checked; a bucket that cannot be read, or a bad object, is an error. */
async function journaledBundles(o: FinishJournalOptions, summary: JournalSummary): Promise<Todo[]> {
  const todo: Todo[] = [];
  for (const bucket of o.buckets) {
    try {
      const { objects, calls } = await readBundleJournals(o.s3, bucket);
      summary.calls.describe += calls;
      for (const { key, imageId, text } of objects) {
        try {
          todo.push({ kind: 'bundle', imageId, journal: parseBundleJournal(text, bucket, key) });
        } catch (error) {
          summary.errors.push({ code: awsErrorName(error) ?? 'Error', message: (error as Error).message });
        }
      }
    } catch (error) {
      if (isDeadlineError(error)) throw error;
      summary.errors.push({
        code: awsErrorName(error) ?? 'Error',
        message: `could not read the journal in s3://${bucket}/: ${(error as Error).message}`,
      });
    }
  }
  return todo;
}

/** One journaled snapshot of a gone image: deleted, or released if another image uses it. Undefined: done. */
async function finishSnapshot(
  o: FinishJournalOptions,
  t: JournaledSnapshot,
  summary: JournalSummary,
): Promise<string | undefined> {
  summary.calls.mutating++;
  const failure = await deleteJournaledSnapshot(o.ec2, o.pacer, t.snapshotId);
  const outcome = snapshotDeleteOutcome(failure?.errorName);
  if (outcome === 'deleted') {
    summary.snapshotsDeleted++;
    summary.snapshotGibFreed += t.sizeGiB;
  } else if (outcome === 'in-use') {
    try {
      summary.calls.mutating++;
      await releaseJournaledSnapshot(o.ec2, o.pacer, t.snapshotId);
      summary.snapshotsReleased++;
    } catch (error) {
      return `in use by another image; the journal tag could not be dropped: ${awsErrorName(error) ?? 'Error'}`;
    }
  } else if (outcome === 'failed') {
    return `DeleteSnapshot failed: ${failure?.errorName}: ${failure?.message}`;
  }
  return undefined;
}

/** One journaled bundle of a gone image: its parts, its manifest, then the journal object. Undefined: done. */
async function finishBundle(
  o: FinishJournalOptions,
  t: { journal: BundleJournal },
  summary: JournalSummary,
): Promise<string | undefined> {
  const { journal } = t;
  try {
    summary.calls.describe++;
    const { bundleDeleted, calls } = await deleteJournaledBundle(o.s3, journal);
    summary.calls.mutating += calls;
    if (bundleDeleted) {
      summary.bundlesDeleted++;
      summary.bundleBytesFreed += journal.bytes ?? 0;
    }
    return undefined;
  } catch (error) {
    return `bundle s3://${journal.bucket}/${journal.manifestKey}: ${awsErrorName(error) ?? 'Error'}: ${(error as Error).message}`;
  }
}
