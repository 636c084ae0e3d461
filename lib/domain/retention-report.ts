import type { METRIC } from '../observability.ts';
import { type JournalSummary, openGiB } from './journal.ts';
import type { OrphanSweepResult } from './orphan-sweep.ts';
import type { Policy } from './policy.ts';
import type { ImageReferencesCoverage } from './retention-inventory.ts';
import { KEEP_REASONS, type KeepReason, type RetentionPlan, type RuleName } from './retention-planner.ts';
import { binUntil, describeBinRule, type BinStay } from './recycle-bin.ts';
import { formatMonthly, plural } from './text.ts';

/**
 * The record of one retention run in one region: what was kept and why, what was deprecated and removed,
 * each snapshot's and bundle's fate, errors, and what it freed. The same shape for a dry-run (nothing done,
 * everything planned) and a real run; it is logged, turned into metrics and written to S3.
 */

/**
 * DeregisterImage's per-snapshot ReturnCode; `skipped` means another image still uses it (kept, not an error).
 * `unconfirmed` (ami-dr's own): DeregisterImage did not report on it (no DeleteSnapshotResults, or the image was
 * gone already); it stays in the deletion journal until it is confirmed deleted.
 */
export type SnapshotReturnCode =
  'success' | 'skipped' | 'missing-permissions' | 'internal-error' | 'client-error' | 'unconfirmed' | (string & {});

export const UNCONFIRMED = 'unconfirmed';

export interface SnapshotResult {
  snapshotId: string;
  returnCode: SnapshotReturnCode;
  sizeGiB: number;
}

export interface BundleResult {
  bucket: string;
  manifestKey: string;
  /** Every key deleted: the parts the manifest lists, then the manifest (only once every part is gone). */
  deletedKeys: string[];
  /** From the manifest's bundled_size, when it says. */
  bytes?: number;
}

export interface RemovedImage {
  imageId: string;
  name: string;
  rootDeviceType: 'ebs' | 'instance-store';
  /** DeregisterImage found it gone already (an earlier run, or someone else): done, not removed twice. */
  alreadyGone: boolean;
  snapshots: SnapshotResult[];
  bundle?: BundleResult;
  /** Instance-store: the bundle was left in S3 because another registered image names it too. */
  bundleKept?: boolean;
}

export interface DeprecatedImage {
  imageId: string;
  name: string;
  deprecateAt: string;
  alreadyGone?: boolean;
}

export type RetentionStep = 'inventory' | 'plan' | 'journal' | 'deprecate' | 'deregister' | 'bundle' | 'report';

export interface RetentionError {
  step: RetentionStep;
  imageId?: string;
  /** The error's name or AWS error code (`InvalidManifestError`, `NoSuchBucket`, `RequestLimitExceeded`, ...). */
  code: string;
  message: string;
}

export interface PendingAction {
  imageId: string;
  action: 'deprecate' | 'deregister';
  /**
   * The deadline cut its call in flight: AWS may have done it already (the next run then finds the image gone,
   * or deprecated). An instance-store image's bundle is then named in the errors, as it may be left in S3.
   */
  interrupted?: boolean;
}

/** What the apply step did. */
export interface ApplyOutcome {
  deprecated: DeprecatedImage[];
  removed: RemovedImage[];
  errors: RetentionError[];
  /** Planned but not attempted: the time budget ran out. The next run's plan picks them up again. */
  pending: PendingAction[];
  stoppedEarly: boolean;
  /** Calls that change something (EnableImageDeprecation, DeregisterImage, DeleteObjects). */
  mutatingCalls: number;
}

export interface KeptImage {
  imageId: string;
  name: string;
  /** The retention rule that decided (lib/domain/retention-planner.ts RETENTION_RULES). */
  rule: RuleName;
  reason: KeepReason;
  detail: string;
}

export interface RetentionReport {
  region: string;
  accountId: string;
  policy: string;
  dryRun: boolean;
  /** The time the plan was made for. */
  planTime: string;
  startedAt: string;
  finishedAt: string;
  /** Every planned action done (a dry-run is complete when planned). False: the next run continues. */
  complete: boolean;
  imageReferences: ImageReferencesCoverage;
  counts: {
    images: number;
    kept: number;
    deprecated: number;
    removed: number;
    alreadyGone: number;
    pending: number;
    /** Planned deprecations and removals that were attempted and failed (see errors); the next run tries again. */
    failed: number;
    errors: number;
    snapshotsDeleted: number;
    snapshotsKept: number;
    bundlesDeleted: number;
    /** Deletion journal entries still open (their image is gone, their storage not yet deleted). */
    journalOpen: number;
  };
  keptByReason: Partial<Record<KeepReason, number>>;
  kept: KeptImage[];
  /** The plan's deprecations and removals (what a dry-run would do), each with the rule that decided it. */
  planned: {
    deprecate: { imageId: string; name: string; rule: RuleName; detail: string }[];
    deregister: { imageId: string; name: string; rule: RuleName; detail: string; snapshots: string[] }[];
  };
  deprecated: DeprecatedImage[];
  removed: RemovedImage[];
  pending: PendingAction[];
  errors: RetentionError[];
  warnings: string[];
  /**
   * Dry-run: what removing the planned images should free now. Real run: what was freed now. Snapshots a Recycle
   * Bin rule retains are not in it: they are billed until the rule lets go (see recycleBin).
   */
  gibFreed: number;
  snapshotGibFreed: number;
  bundleGibFreed: number;
  /** gibFreed of snapshots × retention.snapshotPricePerGbMonth. An upper bound: EBS snapshots are incremental. */
  estimatedMonthlySaving: number;
  /**
   * What went (dry-run: would go) to the Recycle Bin, still billed until its rule's period ends: freed only then.
   * `until` is the latest of those dates.
   */
  recycleBin: {
    /** The region's rules, one line each; empty when it has none (or they could not be read: see warnings). */
    rules: string[];
    images: { imageId: string; ruleId: string; until: string }[];
    snapshots: { snapshotId: string; sizeGiB: number; ruleId: string; until: string }[];
    gib: number;
    until?: string;
  };
  /**
   * The deletion journal: what this run finished (included in gibFreed) and the entries still open, with the GiB
   * they hold; the next run finishes them.
   */
  journal?: JournalSummary & { openGiB: number };
  /** The orphan sweep, when the policy turns it on. */
  orphanSweep?: OrphanSweepResult;
}

const GIB = 1024 ** 3;

export interface ReportInput {
  plan: RetentionPlan;
  policy: Readonly<Policy>;
  dryRun: boolean;
  imageReferences: ImageReferencesCoverage;
  /** Absent for a dry-run. */
  outcome?: ApplyOutcome;
  /** Errors outside any one image's apply (a failed report upload, ...). */
  errors?: RetentionError[];
  /** What finishing the deletion journal did (lib/workflows/retention-journal.ts). */
  journal?: JournalSummary;
  orphanSweep?: OrphanSweepResult;
  startedAt: number;
  finishedAt: number;
}

export function buildRetentionReport(input: ReportInput): RetentionReport {
  const { plan, policy, outcome, dryRun } = input;
  const { kept, keptByReason, planned } = sortActions(plan);
  const errors = [
    ...plan.errors.map((message): RetentionError => ({ step: 'plan', code: 'PolicyProblem', message })),
    ...(outcome?.errors ?? []),
    ...(input.errors ?? []),
  ];
  const removed = outcome?.removed ?? [];
  const deprecated = outcome?.deprecated ?? [];
  const pending = outcome?.pending ?? [];
  const binFrom = dryRun || !outcome ? Date.parse(plan.now) : input.finishedAt;
  const bin = dryRun || !outcome ? plannedBin(plan, binFrom) : removedBin(plan, removed, binFrom);
  const journal = input.journal;
  const { snapshotGibAll, bundleGib, snapshotsDeleted, snapshotsKept, bundlesDeleted } = freedStorage(input, bin);
  const price = policy.retention.snapshotPricePerGbMonth;
  const done = new Set([...deprecated.map((d) => d.imageId), ...removed.map((r) => r.imageId)]);
  const failedIds = new Set(
    errors.filter((e) => e.imageId !== undefined && e.step !== 'plan' && e.step !== 'report').map((e) => e.imageId),
  );
  const failed = dryRun
    ? 0
    : [...planned.deprecate, ...planned.deregister].filter((a) => failedIds.has(a.imageId) && !done.has(a.imageId))
        .length;
  const journalOpen = journal?.open.length ?? 0;
  const complete = dryRun
    ? plan.errors.length === 0
    : Boolean(outcome) && pending.length === 0 && errors.length === 0 && journalOpen === 0;

  return {
    region: plan.region,
    accountId: plan.accountId,
    policy: policy.name,
    dryRun,
    planTime: plan.now,
    startedAt: new Date(input.startedAt).toISOString(),
    finishedAt: new Date(input.finishedAt).toISOString(),
    complete,
    imageReferences: input.imageReferences,
    counts: {
      images: plan.actions.length,
      kept: kept.length,
      deprecated: deprecated.length,
      removed: removed.filter((r) => !r.alreadyGone).length,
      alreadyGone: removed.filter((r) => r.alreadyGone).length,
      pending: pending.length,
      failed,
      errors: errors.length,
      snapshotsDeleted,
      snapshotsKept,
      bundlesDeleted,
      journalOpen,
    },
    keptByReason,
    kept,
    planned,
    deprecated,
    removed,
    pending,
    errors,
    warnings: [...plan.warnings, ...(dryRun ? [] : journalWarnings(removed, journal, binnedByJournal(input)))],
    gibFreed: round(snapshotGibAll + bundleGib, 3),
    snapshotGibFreed: round(snapshotGibAll, 3),
    bundleGibFreed: round(bundleGib, 3),
    estimatedMonthlySaving: round(snapshotGibAll * price, 2),
    recycleBin: {
      rules: (plan.recycleBinRules ?? []).map(describeBinRule),
      images: bin.images,
      snapshots: bin.snapshots,
      gib: round(
        bin.snapshots.reduce((n, x) => n + x.sizeGiB, 0),
        3,
      ),
      ...(bin.until ? { until: bin.until } : {}),
    },
    ...(journal ? { journal: { ...journal, openGiB: round(openGiB(journal.open), 3) } } : {}),
    ...(input.orphanSweep ? { orphanSweep: input.orphanSweep } : {}),
  };
}

type Bin = Pick<RetentionReport['recycleBin'], 'images' | 'snapshots' | 'until'>;

/**
 * What the run freed: confirmed deletions only, by DeregisterImage or the deletion journal; on a dry-run, what the
 * plan would free. Snapshots the journal deleted in a region with a Recycle Bin rule for snapshots may be held by it
 * (the journal does not know their tags): they are not counted (binnedByJournal says how much).
 */
function freedStorage(input: ReportInput, bin: Bin) {
  const { plan, outcome, dryRun, journal } = input;
  const removed = outcome?.removed ?? [];
  const { snapshotGib, bundleBytes, snapshotsDeleted, snapshotsKept, bundlesDeleted } =
    dryRun || !outcome
      ? { ...NOTHING_FREED, snapshotGib: plan.expectedSnapshotGiB - (plan.expectedBinGiB ?? 0) }
      : storageFreed(removed, bin);
  const byJournal = dryRun || !journal ? undefined : journal;
  const journalSnapshotGib = binnedByJournal(input) > 0 ? 0 : (byJournal?.snapshotGibFreed ?? 0);
  return {
    snapshotGibAll: snapshotGib + journalSnapshotGib,
    bundleGib: (bundleBytes + (byJournal?.bundleBytesFreed ?? 0)) / GIB,
    snapshotsDeleted,
    snapshotsKept,
    bundlesDeleted: bundlesDeleted + (byJournal?.bundlesDeleted ?? 0),
  };
}

/** GiB of snapshots the journal deleted that a Recycle Bin rule of the region may hold (0 without such a rule). */
function binnedByJournal(input: ReportInput): number {
  if (input.dryRun || !input.journal) return 0;
  const rules = input.plan.recycleBinRules ?? [];
  return rules.some((r) => r.resourceType === 'EBS_SNAPSHOT') ? input.journal.snapshotGibFreed : 0;
}

/** Dry-run: what the plan's removals would put in the Recycle Bin (snapshots no kept image shares, each once). */
function plannedBin(plan: RetentionPlan, fromMs: number): Bin {
  const bin: Bin = { images: [], snapshots: [] };
  const seen = new Set<string>();
  for (const a of plan.actions) {
    if (a.action !== 'deregister') continue;
    if (a.recycleBin) bin.images.push({ imageId: a.imageId, ...stayUntil(a.recycleBin, fromMs) });
    for (const s of a.snapshots) {
      if (!s.recycleBin || s.sharedWithKeptImage || seen.has(s.snapshotId)) continue;
      seen.add(s.snapshotId);
      bin.snapshots.push({ snapshotId: s.snapshotId, sizeGiB: s.sizeGiB, ...stayUntil(s.recycleBin, fromMs) });
    }
  }
  return withLatest(bin);
}

/** Real run: the removed images and deleted snapshots that a Recycle Bin rule retains. */
function removedBin(plan: RetentionPlan, removed: readonly RemovedImage[], fromMs: number): Bin {
  const planned = new Map(plan.actions.flatMap((a) => (a.action === 'deregister' ? [[a.imageId, a] as const] : [])));
  const bin: Bin = { images: [], snapshots: [] };
  const seen = new Set<string>();
  for (const r of removed) {
    const a = planned.get(r.imageId);
    if (!a || r.alreadyGone) continue;
    if (a.recycleBin) bin.images.push({ imageId: r.imageId, ...stayUntil(a.recycleBin, fromMs) });
    const stays = new Map(a.snapshots.map((s) => [s.snapshotId, s.recycleBin]));
    for (const s of r.snapshots) {
      const stay = stays.get(s.snapshotId);
      if (s.returnCode !== 'success' || !stay || seen.has(s.snapshotId)) continue;
      seen.add(s.snapshotId);
      bin.snapshots.push({ snapshotId: s.snapshotId, sizeGiB: s.sizeGiB, ...stayUntil(stay, fromMs) });
    }
  }
  return withLatest(bin);
}

const stayUntil = (stay: BinStay, fromMs: number): { ruleId: string; until: string } => ({
  ruleId: stay.ruleId,
  until: binUntil(stay, fromMs),
});

function withLatest(bin: Bin): Bin {
  const dates = [...bin.images, ...bin.snapshots].map((x) => x.until).sort();
  const until = dates.at(-1);
  return until ? { ...bin, until } : bin;
}

/** Snapshots DeregisterImage did not confirm deleted, and what the journal still holds: never silent. */
function journalWarnings(
  removed: readonly RemovedImage[],
  journal: JournalSummary | undefined,
  binnedGib: number,
): string[] {
  const warnings: string[] = [];
  if (binnedGib > 0)
    warnings.push(
      `the deletion journal deleted ${round(binnedGib, 3)} GiB of snapshots in a region with a Recycle Bin rule for snapshots: not counted as freed (a rule may hold them)`,
    );
  const unconfirmed = removed.flatMap((r) =>
    r.snapshots.filter((s) => s.returnCode !== 'success' && s.returnCode !== 'skipped'),
  );
  if (unconfirmed.length > 0) {
    const gib = round(
      unconfirmed.reduce((n, s) => n + s.sizeGiB, 0),
      3,
    );
    warnings.push(
      `DeregisterImage did not confirm deleting ${plural(unconfirmed.length, 'snapshot')} (${gib} GiB, not counted as freed): ` +
        `${unconfirmed
          .slice(0, 5)
          .map((s) => `${s.snapshotId} (${s.returnCode})`)
          .join(
            ', ',
          )}${unconfirmed.length > 5 ? ', ...' : ''}; left to the deletion journal, which deletes them once confirmed (see the journal's open entries)`,
    );
  }
  if (journal && journal.open.length > 0) {
    warnings.push(
      `${entries(journal.open.length)} of the deletion journal still open (${round(openGiB(journal.open), 3)} GiB): ` +
        `${journal.open
          .slice(0, 5)
          .map(
            (e) =>
              `${e.kind === 'snapshot' ? e.snapshotId : `s3://${e.bucket}/${e.manifestKey}`} of ${e.imageId}: ${e.reason}`,
          )
          .join('; ')}${journal.open.length > 5 ? '; ...' : ''}`,
    );
  }
  for (const e of journal?.errors ?? []) warnings.push(`deletion journal: ${e.code}: ${e.message}`);
  return warnings;
}

/** The plan's actions by kind: what is kept (with counts by reason, in the planner's order) and what is planned. */
function sortActions(plan: RetentionPlan): {
  kept: KeptImage[];
  keptByReason: Partial<Record<KeepReason, number>>;
  planned: RetentionReport['planned'];
} {
  const kept: KeptImage[] = [];
  const counts: Partial<Record<KeepReason, number>> = {};
  const planned: RetentionReport['planned'] = { deprecate: [], deregister: [] };
  for (const a of plan.actions) {
    if (a.action === 'keep') {
      kept.push({ imageId: a.imageId, name: a.name, rule: a.rule, reason: a.reason, detail: a.detail });
      counts[a.reason] = (counts[a.reason] ?? 0) + 1;
    } else if (a.action === 'deprecate') {
      planned.deprecate.push({ imageId: a.imageId, name: a.name, rule: a.rule, detail: a.detail });
    } else {
      planned.deregister.push({
        imageId: a.imageId,
        name: a.name,
        rule: a.rule,
        detail: a.detail,
        snapshots: a.snapshots.map((s) => s.snapshotId),
      });
    }
  }
  // Report reasons in the order of the planner's rules, so reports diff cleanly.
  const keptByReason = Object.fromEntries(
    KEEP_REASONS.filter((r) => counts[r]).map((r) => [r, counts[r]]),
  ) as typeof counts;
  return { kept, keptByReason, planned };
}

interface StorageFreed {
  snapshotGib: number;
  bundleBytes: number;
  snapshotsDeleted: number;
  snapshotsKept: number;
  bundlesDeleted: number;
}

const NOTHING_FREED: StorageFreed = {
  snapshotGib: 0,
  bundleBytes: 0,
  snapshotsDeleted: 0,
  snapshotsKept: 0,
  bundlesDeleted: 0,
};

/** What the removals freed: each deleted snapshot counted once, and bundles whose manifest was deleted. */
function storageFreed(removed: readonly RemovedImage[], bin: Bin): StorageFreed {
  // Snapshots in the Recycle Bin are deleted but not freed: they stay billed until their rule lets go.
  const freed = new Set<string>(bin.snapshots.map((x) => x.snapshotId));
  const total = { ...NOTHING_FREED };
  for (const r of removed) {
    for (const s of r.snapshots) {
      if (s.returnCode === 'success') {
        total.snapshotsDeleted++;
        if (!freed.has(s.snapshotId)) total.snapshotGib += s.sizeGiB;
        freed.add(s.snapshotId);
      } else {
        total.snapshotsKept++;
      }
    }
    // The manifest goes last, after every part: a bundle S3 refused any of is not deleted, nor its storage freed.
    if (r.bundle?.deletedKeys.includes(r.bundle.manifestKey)) {
      total.bundlesDeleted++;
      total.bundleBytes += r.bundle.bytes ?? 0;
    }
  }
  return total;
}

/** One line per fact, for the CLI and logs: counts by reason, then errors. */
export function summarizeReport(report: RetentionReport): string {
  const lines = [
    `${report.region}: ${report.dryRun ? 'dry-run, ' : ''}${plural(report.counts.images, 'image')}: ${report.counts.kept} kept, ` +
      (report.dryRun
        ? `${report.planned.deprecate.length} to deprecate, ${report.planned.deregister.length} to remove`
        : `${report.counts.deprecated} deprecated, ${report.counts.removed} removed, ` +
          `${report.counts.failed ? `${report.counts.failed} failed, ` : ''}${report.counts.pending + report.counts.journalOpen} left for the next run`) +
      `, ${report.gibFreed} GiB${report.dryRun ? ' to free' : ' freed'}${report.recycleBin.until ? ' now' : ''} (${formatMonthly(report.estimatedMonthlySaving)})` +
      (report.journal?.open.length
        ? `, ${report.journal.openGiB} GiB pending in the deletion journal (${entries(report.journal.open.length)})`
        : '') +
      (report.recycleBin.until
        ? `, ${report.recycleBin.gib} GiB in the Recycle Bin until ${report.recycleBin.until.slice(0, 10)} (${plural(report.recycleBin.images.length, 'image')}, ${plural(report.recycleBin.snapshots.length, 'snapshot')}; billed until then)`
        : ''),
    ...Object.entries(report.keptByReason).map(([reason, n]) => `  kept ${reason}: ${n}`),
    ...(report.orphanSweep ? [sweepLine(report.orphanSweep)] : []),
    ...report.errors.map((e) => `  error ${e.step}${e.imageId ? ` ${e.imageId}` : ''}: ${e.code}: ${e.message}`),
  ];
  return lines.join('\n');
}

const entries = (n: number): string => `${n} ${n === 1 ? 'entry' : 'entries'}`;

function sweepLine(sweep: OrphanSweepResult): string {
  const gib = round(sweep.gib, 3);
  return sweep.dryRun
    ? `  orphan sweep (dry-run): ${plural(sweep.candidates.length, 'orphaned snapshot')} of ${sweep.scanned} older than ${sweep.minAgeDays} days, ${gib} GiB to free (${formatMonthly(sweep.estimatedMonthlySaving)})` +
        sweep.candidates
          .slice(0, 20)
          .map((c) => `\n    ${c.snapshotId} (${c.sizeGiB} GiB) of ${c.imageId}, gone`)
          .join('')
    : `  orphan sweep: ${plural(sweep.deleted.length, 'orphaned snapshot')} deleted of ${sweep.candidates.length} found, ${gib} GiB freed (${formatMonthly(sweep.estimatedMonthlySaving)})` +
        (sweep.errors.length ? `, ${plural(sweep.errors.length, 'error')}` : '');
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** What the metrics count of a region's run (a report, or a work unit's totals over its invocations). */
export interface RetentionTotals {
  dryRun: boolean;
  gibFreed: number;
  counts: Pick<RetentionReport['counts'], 'deprecated' | 'removed' | 'errors'>;
}

/** The metric names (lib/observability.ts METRIC) and units retention publishes; the RetentionErrors alarm reads these. */
export interface RetentionMetric {
  name: (typeof METRIC)[keyof typeof METRIC];
  unit: 'Count' | 'Gigabytes';
  value: number;
}

/**
 * One data point per run for each, summed over the run's regions: images deprecated, images removed (not counting
 * ones already gone), GiB freed, and errors (per-image failures, plan problems, and regions that failed outright).
 * A dry-run did nothing, so it publishes only its errors.
 */
export function retentionMetrics(reports: readonly RetentionTotals[], failedRegions = 0): RetentionMetric[] {
  const real = reports.filter((r) => !r.dryRun);
  const sum = (f: (r: RetentionTotals) => number, of: readonly RetentionTotals[] = real): number =>
    of.reduce((n, r) => n + f(r), 0);
  return [
    { name: 'ImagesDeprecated', unit: 'Count', value: sum((r) => r.counts.deprecated) },
    { name: 'ImagesRemoved', unit: 'Count', value: sum((r) => r.counts.removed) },
    {
      name: 'GiBFreed',
      unit: 'Gigabytes',
      value: round(
        sum((r) => r.gibFreed),
        3,
      ),
    },
    { name: 'RetentionErrors', unit: 'Count', value: sum((r) => r.counts.errors, reports) + failedRegions },
  ];
}
