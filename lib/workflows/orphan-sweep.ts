import {
  confirmGone,
  deleteSnapshot,
  isShared,
  ownImages,
  ownSnapshots,
  REQUIRED_PERMISSIONS as SWEEP_CALLS,
} from '../aws/orphan-sweep.ts';
import { TokenBucketPacer } from '../aws/pacer.ts';
import { awsErrorName, isAwsError } from '../domain/errors.ts';
import { amiOfDescription, decideSweep, type OrphanSweepResult, sweepSuspects } from '../domain/orphan-sweep.ts';

/**
 * The orphan sweep (opt-in, lib/domain/orphan-sweep.ts decides): reads the account's snapshots and images, proves
 * the named AMIs gone and the suspects unshared, then, unless dry-run, deletes the candidates.
 */

export const REQUIRED_PERMISSIONS = SWEEP_CALLS;

export interface SweepOptions {
  ec2: Parameters<typeof ownSnapshots>[0];
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
    if (await isShared(options.ec2, describe, s.snapshotId)) shared.add(s.snapshotId);
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
      await deleteSnapshot(options.ec2, pacer, c.snapshotId);
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
