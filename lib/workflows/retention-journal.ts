import { type Clients, ec2Client, s3Client } from '../aws/clients.ts';
import { finishJournal, REQUIRED_PERMISSIONS as JOURNAL_PERMISSIONS } from '../aws/journal.ts';
import { REQUIRED_PERMISSIONS as SWEEP_PERMISSIONS, sweepOrphans } from '../aws/orphan-sweep.ts';
import type { TokenBucketPacer } from '../aws/pacer.ts';
import { awsErrorName } from '../domain/errors.ts';
import { emptyJournalSummary, journalBuckets, type JournalSummary, mergeJournalSummaries } from '../domain/journal.ts';
import type { OrphanSweepResult } from '../domain/orphan-sweep.ts';
import type { Policy } from '../domain/policy.ts';
import type { RetentionPlan } from '../domain/retention-planner.ts';

/**
 * The deletion journal's place in a retention run: a pass before the plan is applied finishes what earlier runs
 * left open; a pass after it finishes what this run could not (S3 or EC2 refused, DeregisterImage did not confirm),
 * with back-off; what is still open is reported as left for the next run. Then the orphan sweep, when turned on.
 * A dry-run only lists.
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

/** Before the apply: finishes the open entries found in the policy's bundle buckets. Never fails the run. */
export async function openRunJournal(o: JournalPassOptions): Promise<JournalSummary> {
  return pass(o, [...o.policy.retention.bundleBuckets]);
}

/** After the apply: one more pass (now also in the buckets of this plan's bundles), merged, and the sweep. */
export async function closeRunJournal(
  o: JournalPassOptions & { now: number },
  plan: RetentionPlan,
  first: JournalSummary,
): Promise<{ journal: JournalSummary; orphanSweep?: OrphanSweepResult }> {
  const buckets = journalBuckets(
    o.policy.retention.bundleBuckets,
    // An EBS image's location is `owner/name`, not a bucket: only instance-store bundles name buckets.
    plan.actions.map((a) =>
      a.action === 'deregister' && a.rootDeviceType === 'instance-store' ? a.imageLocation : undefined,
    ),
  );
  const journal = o.dryRun ? first : mergeJournalSummaries(first, await pass(o, buckets));
  const sweep = o.policy.retention.orphanSweep;
  if (!sweep.enabled) return { journal };
  const orphanSweep = await sweepOrphans({
    ec2: ec2Client(o.clients, o.region),
    pacer: o.pacer,
    now: o.now,
    minAgeDays: sweep.minAgeDays,
    dryRun: o.dryRun || sweep.dryRun,
    pricePerGbMonth: o.policy.retention.snapshotPricePerGbMonth,
    ...(o.deadline !== undefined ? { deadline: o.deadline } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  });
  return { journal, orphanSweep };
}

async function pass(o: JournalPassOptions, buckets: string[]): Promise<JournalSummary> {
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
