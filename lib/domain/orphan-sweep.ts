import { JOURNAL_TAG } from './journal.ts';

/**
 * The orphan sweep (opt-in, dry-run by default): EBS snapshots of the account that belong to no registered image
 * and whose description names an AMI that is provably gone — left behind by deregistrations before ami-dr, or by
 * tools that deregistered without DeleteAssociatedSnapshots. Decided by a table of rules, in order; the first
 * that holds keeps the snapshot. Only a snapshot no rule keeps is a candidate.
 */

export interface SweptSnapshot {
  snapshotId: string;
  description?: string;
  tags: Record<string, string>;
  /** ISO 8601. */
  startTime: string;
  sizeGiB: number;
}

export interface SweepFacts {
  /** Snapshots some registered image of the account uses. */
  usedSnapshotIds: ReadonlySet<string>;
  /** AMIs confirmed not registered (DescribeImages found nothing for them). */
  goneImageIds: ReadonlySet<string>;
  /** Snapshots with any createVolumePermission (shared with an account, or public). */
  sharedSnapshotIds: ReadonlySet<string>;
  now: number;
  minAgeDays: number;
}

export const SWEEP_KEEP_REASONS = [
  'journaled',
  'backup',
  'in-use',
  'too-young',
  'no-ami-named',
  'ami-not-proven-gone',
  'shared',
] as const;
export type SweepKeepReason = (typeof SWEEP_KEEP_REASONS)[number];

const CREATED = /^Created by CreateImage\(i-[0-9a-f]+\) for (ami-[0-9a-f]+) from vol-[0-9a-f]+/;
const COPIED = /^Copied for DestinationAmi (ami-[0-9a-f]+) from SourceAmi ami-[0-9a-f]+/;
const DAY_MS = 86_400_000;

/** The AMI a snapshot's description says it was made for (CreateImage, CopyImage), if any. */
export function amiOfDescription(description: string | undefined): string | undefined {
  if (!description) return undefined;
  return (CREATED.exec(description) ?? COPIED.exec(description))?.[1];
}

const isBackup = (s: SweptSnapshot): boolean =>
  Object.keys(s.tags).some((k) => k.startsWith('aws:backup:')) || /AWS Backup|aws:backup:/i.test(s.description ?? '');

/** The rules, in order: each returns true when it keeps the snapshot. */
const RULES: readonly [SweepKeepReason, (s: SweptSnapshot, f: SweepFacts) => boolean][] = [
  // The journal finishes these itself, with the image it was recorded for.
  ['journaled', (s) => JOURNAL_TAG in s.tags],
  ['backup', (s) => isBackup(s)],
  ['in-use', (s, f) => f.usedSnapshotIds.has(s.snapshotId)],
  ['too-young', (s, f) => Date.parse(s.startTime) > f.now - f.minAgeDays * DAY_MS],
  ['no-ami-named', (s) => amiOfDescription(s.description) === undefined],
  ['ami-not-proven-gone', (s, f) => !f.goneImageIds.has(amiOfDescription(s.description)!)],
  ['shared', (s, f) => f.sharedSnapshotIds.has(s.snapshotId)],
];

/** Why a snapshot is kept (the first rule that holds), or undefined: it is an orphan. */
export function sweepKeepReason(s: SweptSnapshot, facts: SweepFacts): SweepKeepReason | undefined {
  return RULES.find(([, keeps]) => keeps(s, facts))?.[0];
}

/** Rules that need no call to AWS; a snapshot passing them needs its AMI proven gone and its sharing checked. */
export function sweepSuspects(
  snapshots: readonly SweptSnapshot[],
  facts: Omit<SweepFacts, 'goneImageIds' | 'sharedSnapshotIds'>,
): SweptSnapshot[] {
  const cheap = RULES.slice(0, 5);
  const f = { ...facts, goneImageIds: new Set<string>(), sharedSnapshotIds: new Set<string>() };
  return snapshots.filter((s) => !cheap.some(([, keeps]) => keeps(s, f)));
}

export interface OrphanCandidate {
  snapshotId: string;
  imageId: string;
  sizeGiB: number;
  startTime: string;
  description: string;
}

export interface OrphanSweepResult {
  /** Whether deletions were made (policy enabled, not dry-run, run not a dry-run). */
  dryRun: boolean;
  minAgeDays: number;
  scanned: number;
  candidates: OrphanCandidate[];
  keptByReason: Partial<Record<SweepKeepReason, number>>;
  deleted: string[];
  errors: { snapshotId: string; code: string; message: string }[];
  /** GiB of the candidates (dry-run) or of the snapshots deleted. */
  gib: number;
  estimatedMonthlySaving: number;
  calls: { describe: number; mutating: number };
}

export function decideSweep(
  snapshots: readonly SweptSnapshot[],
  facts: SweepFacts,
): { candidates: OrphanCandidate[]; keptByReason: Partial<Record<SweepKeepReason, number>> } {
  const candidates: OrphanCandidate[] = [];
  const counts: Partial<Record<SweepKeepReason, number>> = {};
  for (const s of snapshots) {
    const reason = sweepKeepReason(s, facts);
    if (reason) counts[reason] = (counts[reason] ?? 0) + 1;
    else
      candidates.push({
        snapshotId: s.snapshotId,
        imageId: amiOfDescription(s.description)!,
        sizeGiB: s.sizeGiB,
        startTime: s.startTime,
        description: s.description ?? '',
      });
  }
  const keptByReason = Object.fromEntries(
    SWEEP_KEEP_REASONS.filter((r) => counts[r]).map((r) => [r, counts[r]]),
  ) as typeof counts;
  return { candidates, keptByReason };
}
