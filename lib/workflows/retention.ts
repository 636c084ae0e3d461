import { callerAccountId } from '../aws/account.ts';
import { type Clients, ec2Client, s3Client, stsClient } from '../aws/clients.ts';
import {
  addImageReferences,
  collectInventory,
  REQUIRED_PERMISSIONS as INVENTORY_PERMISSIONS,
} from '../aws/inventory.ts';
import { TokenBucketPacer } from '../aws/pacer.ts';
import { putJsonReport } from '../aws/reports.ts';
import {
  applyRetentionPlan,
  type ApplyOutcome,
  REQUIRED_PERMISSIONS as APPLY_PERMISSIONS,
} from '../aws/retention-apply.ts';
import { policyVersion, type Policy } from '../domain/policy.ts';
import { sourceKey, type RetentionInventory } from '../domain/retention-inventory.ts';
import { planRetention, RETENTION_RULES, type PlanLimit, type RetentionPlan } from '../domain/retention-planner.ts';
import {
  checkSavedPlan,
  inventoryFingerprint,
  planLimits,
  skippedActions,
  type SavedPlan,
  type SavedRegionPlan,
  type SkippedAction,
} from '../domain/saved-plan.ts';
import { buildRetentionReport, type RetentionError, type RetentionReport } from '../domain/retention-report.ts';
import { awsErrorName, isDeadlineError } from '../domain/errors.ts';
import { boundByDeadline } from './deadline.ts';
import {
  closeRunJournal,
  openRunJournal,
  REQUIRED_PERMISSIONS as JOURNAL_PERMISSIONS,
  type RunJournal,
} from './retention-journal.ts';

/**
 * Retention runs: in one region (runRetention: inventory -> plan -> apply within the time budget -> report), and in
 * every region (runRetentionEverywhere: every region planned first, then each plan applied), for
 * `ami-dr retention plan|apply` and the demo. The scheduled runs' units (scheduled-retention.ts) call planRegion,
 * noteCascades and applyRegion directly.
 */

/** Everything a retention run calls; serverless.yml's retention role grants exactly these. */
export const REQUIRED_PERMISSIONS = [
  ...new Set([
    'sts:GetCallerIdentity',
    ...INVENTORY_PERMISSIONS,
    ...APPLY_PERMISSIONS,
    ...JOURNAL_PERMISSIONS,
    's3:PutObject',
  ]),
];

export interface RunRetentionOptions {
  clients: Clients;
  policy: Readonly<Policy>;
  region: string;
  /** The time the plan is made for (ages are measured to it). Default: the clock's now. */
  now?: number | Date;
  /**
   * Plan only: zero mutating calls. `policy.retention.dryRun: true` always wins: a caller may make a run safer,
   * never less safe. Default: policy.retention.dryRun.
   */
  dryRun?: boolean;
  /** Stops the apply between actions (Ctrl-C): calls in flight finish, the rest is reported as pending. */
  signal?: AbortSignal;
  /**
   * Epoch ms (on `clock`) by which the run must be done, e.g. `Date.now() + context.getRemainingTimeInMillis() -
   * margin`. Work not started by then is reported as pending and done by the next run. Default: none.
   */
  deadline?: number;
  /** The account; default: STS GetCallerIdentity. */
  accountId?: string;
  /** Time for pacing and the deadline; default real time. The twin's ManualClock: `() => clock.now()`. */
  clock?: () => number;
  /** How pacing waits; default a timer. With a ManualClock: `(ms) => clock.advance(ms)`. */
  sleep?: (ms: number) => Promise<void>;
  /** Scales EC2's rate limits (an account with raised limits); default 1. */
  rateScale?: number;
  /** Images worked on at once per rate bucket (default 4). */
  concurrency?: number;
  /** Write the report to policy.retention.reportBucket when set (default true). */
  writeReport?: boolean;
  /**
   * A member account's run: the home account's clients, which write its report (under `retention/<account>/`,
   * the bucket being the home account's).
   */
  reportClients?: Clients;
  onProgress?: (done: number, total: number) => void;
  /** The rate buckets were spent until this time (epoch ms) by the previous invocation of a continued run. */
  drainedAt?: number;
  /** Back-off before the deletion journal retries what failed within the run (doubling); default 1 s. */
  journalBackoffMs?: number;
}

export interface RetentionRun {
  report: RetentionReport;
  plan: RetentionPlan;
  /** inventoryFingerprint of the inventory the plan came from. */
  fingerprint: string;
  /** Applying a saved plan: its deprecations and removals not carried out, each with the fresh plan's reason. */
  skipped?: SkippedAction[];
  /** Applying a saved plan: the region's images changed since it was made (every action is re-checked anyway). */
  inventoryChanged?: boolean;
  /** `s3://bucket/key` of the written report. */
  reportLocation?: string;
  /** Calls made, by kind: what a run costs. */
  calls: { describe: number; mutating: number };
}

/** One region inventoried and planned, nothing changed yet. */
export interface PlannedRegion {
  region: string;
  inventory: RetentionInventory;
  plan: RetentionPlan;
  fingerprint: string;
  pacer: TokenBucketPacer;
  startedAt: number;
  /** The time the plan is made for, epoch ms. */
  now: number;
  limits?: ReadonlyMap<string, PlanLimit>;
  skipped?: SkippedAction[];
  inventoryChanged?: boolean;
  /** The deadline came before the inventory was complete: nothing was planned. */
  unfinished?: true;
}

type RegionOptions = Omit<RunRetentionOptions, 'accountId'> & { accountId: string };

export async function runRetention(options: RunRetentionOptions): Promise<RetentionRun> {
  const accountId = options.accountId ?? (await callerAccountId(stsClient(options.clients, options.region)));
  const planned = await planRegion({ ...options, accountId });
  return applyRegion(planned, options);
}

/** Inventory and plan one region; nothing changes. With `saved`, the fresh plan is limited to what it listed. */
export async function planRegion(options: RegionOptions, saved?: SavedRegionPlan): Promise<PlannedRegion> {
  const { clients, policy, region, accountId } = options;
  const clock = options.clock ?? Date.now;
  const startedAt = clock();
  const now =
    options.now === undefined ? startedAt : typeof options.now === 'number' ? options.now : options.now.getTime();
  // Every SDK call and pacing wait of the inventory ends at the deadline.
  const bound = boundByDeadline(clients, options.deadline, clock);
  const pacer = new TokenBucketPacer({
    now: clock,
    ...(options.sleep ? { sleep: options.sleep } : {}),
    scale: options.rateScale ?? 1,
    ...(options.drainedAt !== undefined ? { drainedAt: options.drainedAt } : {}),
    ...bound.pacer,
  });
  let inventory: RetentionInventory;
  let plan: RetentionPlan;
  try {
    ({ inventory, plan } = await inventoryAndPlan(bound.clients, policy, region, accountId, pacer, now));
  } catch (error) {
    if (!isDeadlineError(error)) throw error;
    // Nothing is planned or done in a region whose inventory the deadline cut short: it is left whole.
    inventory = emptyInventory(region, accountId);
    plan = planRetention(inventory, policy, now);
    return { region, inventory, plan, fingerprint: '', pacer, startedAt, now, unfinished: true };
  } finally {
    bound.dispose();
  }
  const fingerprint = inventoryFingerprint(inventory);
  if (!saved) return { region, inventory, plan, fingerprint, pacer, startedAt, now };
  // A saved plan: the fresh plan decides what is still safe, the saved one what may be done at most.
  const limits = planLimits(saved, plan);
  plan = planRetention(inventory, policy, now, RETENTION_RULES, { limits });
  return {
    region,
    inventory,
    plan,
    fingerprint,
    pacer,
    startedAt,
    now,
    limits,
    skipped: skippedActions(saved, plan),
    inventoryChanged: fingerprint !== saved.fingerprint,
  };
}

/**
 * Where an invocation's retention report is written in the report bucket: under the region, and under the account
 * first when the report is a member's written into the home account's bucket; named after the run's start.
 */
export function retentionReportKey(
  prefix: string,
  r: { account?: string | undefined; region: string; startedAt: string; dryRun: boolean },
): string {
  const account = r.account ? `${r.account}/` : '';
  return `${prefix}retention/${account}${r.region}/${r.startedAt.replace(/[:.]/g, '-')}${r.dryRun ? '-dry-run' : ''}.json`;
}

/**
 * Apply a region's plan (unless a dry-run) within the deadline, and report; nothing is planned again. The deletion
 * journal is finished around it (lib/workflows/retention-journal.ts): what earlier runs left open before, what this
 * one could not finish after; then the orphan sweep when the policy turns it on. A dry-run lists what they would do.
 */
export async function applyRegion(
  planned: PlannedRegion,
  options: Omit<RunRetentionOptions, 'region' | 'now'>,
): Promise<RetentionRun> {
  const { clients, policy } = options;
  const { region, inventory, plan, pacer, startedAt } = planned;
  const clock = options.clock ?? Date.now;
  const dryRun = policy.retention.dryRun || options.dryRun === true;
  const errors: RetentionError[] = [];
  // Every SDK call of the apply ends at the deadline (the report is still written).
  const bound = boundByDeadline(clients, options.deadline, clock);
  let outcome: ApplyOutcome | undefined;
  let journal: RunJournal | undefined;
  try {
    if (planned.unfinished) {
      errors.push(unfinishedInventory(region));
      outcome = { deprecated: [], removed: [], errors: [], pending: [], stoppedEarly: true, mutatingCalls: 0 };
    } else {
      ({ outcome, journal } = await applyWithJournal(planned, { ...options, clients: bound.clients }, dryRun));
    }
  } finally {
    bound.dispose();
  }

  const report = (): RetentionReport =>
    buildRetentionReport({
      ...journal,
      plan,
      policy,
      dryRun,
      imageReferences: inventory.imageReferences,
      outcome,
      errors,
      startedAt,
      finishedAt: clock(),
    });
  let reportLocation: string | undefined;
  const first = report();
  const bucket = policy.retention.reportBucket;
  if (bucket && options.writeReport !== false) {
    const account = options.reportClients ? inventory.accountId : undefined;
    const key = retentionReportKey(policy.retention.reportPrefix, {
      account,
      region,
      startedAt: first.startedAt,
      dryRun,
    });
    try {
      reportLocation = await putJsonReport(s3Client(options.reportClients ?? clients, region), bucket, key, first);
    } catch (error) {
      // The run's work is done; a lost report is an error to see, not a reason to undo or repeat the work.
      errors.push({
        step: 'report',
        code: awsErrorName(error) ?? 'Error',
        message: `could not write the report to s3://${bucket}/${key}: ${(error as Error).message}`,
      });
    }
  }
  const journalCalls = (journal?.journal.calls.mutating ?? 0) + (journal?.orphanSweep?.calls.mutating ?? 0);
  return {
    report: errors.length > 0 ? report() : first,
    plan,
    fingerprint: planned.fingerprint,
    ...(planned.skipped ? { skipped: planned.skipped } : {}),
    ...(planned.inventoryChanged !== undefined ? { inventoryChanged: planned.inventoryChanged } : {}),
    ...(reportLocation ? { reportLocation } : {}),
    calls: { describe: pacer.taken.describe, mutating: (outcome?.mutatingCalls ?? 0) + journalCalls },
  };
}

/**
 * The journal's first pass, the plan's apply (not on a dry-run), the journal's last pass and the orphan sweep, with
 * the deadline-bound clients. Applying a saved plan, the sweep only lists: a saved plan is applied exactly, and its
 * snapshots were not in it.
 */
async function applyWithJournal(
  planned: PlannedRegion,
  options: Omit<RunRetentionOptions, 'region' | 'now'>,
  dryRun: boolean,
): Promise<{ outcome?: ApplyOutcome; journal: RunJournal }> {
  const { region, plan, pacer } = planned;
  const pass = {
    clients: options.clients,
    region,
    policy: options.policy,
    pacer,
    dryRun,
    ...(options.deadline !== undefined ? { deadline: options.deadline } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.journalBackoffMs !== undefined ? { journalBackoffMs: options.journalBackoffMs } : {}),
  };
  const opened = await openRunJournal(pass);
  const outcome = dryRun
    ? undefined
    : await applyRetentionPlan(plan, {
        ec2: ec2Client(options.clients, region),
        s3: s3Client(options.clients, region),
        pacer,
        ...(options.deadline !== undefined ? { deadline: options.deadline } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.concurrency ? { concurrency: options.concurrency } : {}),
      });
  const journal = await closeRunJournal(
    { ...pass, now: planned.now, sweepListOnly: planned.limits !== undefined },
    opened,
  );
  return { ...(outcome ? { outcome } : {}), journal };
}

/** Inventory, then the plan; DescribeImageReferences only for the images the plan would act on (1 call per 10). */
async function inventoryAndPlan(
  clients: Clients,
  policy: Readonly<Policy>,
  region: string,
  accountId: string,
  pacer: TokenBucketPacer,
  now: number,
): Promise<{ inventory: RetentionInventory; plan: RetentionPlan }> {
  const protectInUse = policy.retention.protectInUse;
  let inventory = await collectInventory(clients, { region, accountId, protectInUse, pacer });
  let plan = planRetention(inventory, policy, now);
  if (protectInUse) {
    const candidates = plan.actions.filter((a) => a.action !== 'keep').map((a) => a.imageId);
    inventory = await addImageReferences(ec2Client(clients, region), inventory, candidates, pacer);
    plan = planRetention(inventory, policy, now);
  }
  return { inventory, plan };
}

/** The deadline came before the plan was made: nothing was done, and the whole region is left for the next run. */
function unfinishedInventory(region: string): RetentionError {
  return {
    step: 'inventory',
    code: 'DeadlineReachedError',
    message: `the deadline came before the inventory of ${region} was complete: nothing was planned or done; the next run starts over`,
  };
}

function emptyInventory(region: string, accountId: string): RetentionInventory {
  return {
    region,
    accountId,
    images: [],
    snapshotSizes: new Map(),
    references: new Map(),
    imageReferences: 'not-checked',
    warnings: [],
  };
}

/** Every region retention looks after: the policy's source regions, then its DR regions. */
export function retentionRegions(policy: Readonly<Policy>): string[] {
  return [...new Set([...policy.regions.sources, ...policy.regions.dr.map((d) => d.region)])];
}

export interface RegionFailure {
  region: string;
  code: string;
  message: string;
  /** The error itself, for a caller that reports it its own way. */
  error?: unknown;
}

export interface ScheduledRetention {
  runs: RetentionRun[];
  /** Regions whose run failed outright (inventory unreadable, ...); the others still ran. */
  failures: RegionFailure[];
  /** Regions not applied because the deadline had passed or the run was stopped (their plans are in `runs` neither). */
  skipped: string[];
}

/**
 * The deadline of the next of `regionsLeft` regions run one after the other: an equal share of the time left (what
 * one leaves unused passes to the next). Undefined without a deadline; `now` or earlier when none is left.
 */
export function shareOfDeadline(deadline: number | undefined, now: number, regionsLeft: number): number | undefined {
  if (deadline === undefined) return undefined;
  const left = deadline - now;
  return left <= 0 ? now : now + left / Math.max(1, regionsLeft);
}

export interface EverywhereOptions extends Omit<RunRetentionOptions, 'region' | 'onProgress'> {
  /** Default: every region of the policy (or of the saved plan). */
  regions?: string[];
  /**
   * Apply this saved plan (ami-dr retention plan --output): refused as a whole (SavedPlanRefusedError) when made for
   * another account, policy version or regions; otherwise each region is planned afresh and only what both plans
   * want is done.
   */
  saved?: SavedPlan;
  /** Each region's progress: planning, then applying (done/total images). */
  onProgress?: (region: string, phase: 'planning' | 'applying', done?: number, total?: number) => void;
}

/**
 * Retention over every region, in two steps. First every region is inventoried and planned, before anything
 * changes, so that what a run does is exactly the plan a user previews (`ami-dr retention plan`). Then each region's
 * plan is applied, one region after the other, sharing the deadline: each may use its share of the time left (what
 * one leaves unused passes to the next), so a region with a long backlog does not starve the others. A region that
 * fails does not stop the rest.
 *
 * Cascades are left to a later run, deliberately: a DR copy whose source this run removes is kept (rule live-source,
 * its detail saying so), because its source still exists when the run is planned; the next run, finding the source
 * gone, plans the copy's removal, and that plan can be reviewed first.
 */
export async function runRetentionEverywhere(options: EverywhereOptions): Promise<ScheduledRetention> {
  const clock = options.clock ?? Date.now;
  const { saved } = options;
  const regions = options.regions ?? saved?.regions ?? retentionRegions(options.policy);
  const accountId = options.accountId ?? (await callerAccountId(stsClient(options.clients, regions[0] ?? 'us-east-1')));
  if (saved) {
    checkSavedPlan(saved, {
      accountId,
      policy: { name: options.policy.name, version: policyVersion(options.policy) },
      regions: retentionRegions(options.policy),
    });
  }
  const result: ScheduledRetention = { runs: [], failures: [], skipped: [] };
  const failed = (region: string, error: unknown): void => {
    result.failures.push({
      region,
      code: awsErrorName(error) ?? 'Error',
      message: (error as Error).message ?? String(error),
      error,
    });
  };
  const planned: PlannedRegion[] = [];
  const now = options.now ?? clock();
  for (const region of regions) {
    if (options.signal?.aborted || (options.deadline !== undefined && clock() >= options.deadline)) {
      result.skipped.push(region);
      continue;
    }
    options.onProgress?.(region, 'planning');
    const savedRegion = saved?.plans.find((p) => p.region === region);
    try {
      planned.push(
        await planRegion(
          { ...options, region, accountId, now, onProgress: undefined },
          savedRegion ?? emptyPlan(saved, region),
        ),
      );
    } catch (error) {
      failed(region, error);
    }
  }
  noteCascades(planned, options.policy);
  for (const [i, p] of planned.entries()) {
    const at = clock();
    const deadline = shareOfDeadline(options.deadline, at, planned.length - i);
    if (options.signal?.aborted || (deadline !== undefined && deadline <= at)) {
      result.skipped.push(...planned.slice(i).map((x) => x.region));
      break;
    }
    options.onProgress?.(p.region, 'applying', 0, 0);
    try {
      result.runs.push(
        await applyRegion(p, {
          ...options,
          accountId,
          ...(deadline !== undefined ? { deadline } : {}),
          onProgress: (done, total) => options.onProgress?.(p.region, 'applying', done, total),
        }),
      );
    } catch (error) {
      failed(p.region, error);
    }
  }
  return result;
}

/** A saved plan without this region (it cannot be, checkSavedPlan and parseSavedPlan see to it): do nothing there. */
function emptyPlan(saved: SavedPlan | undefined, region: string): SavedRegionPlan | undefined {
  return saved ? { region, fingerprint: '', actions: [], errors: [], warnings: [] } : undefined;
}

/**
 * Re-plans (pure, no calls) the regions holding copies of sources this run removes, so that the kept copies say why
 * they wait. Only a detail changes: such a copy's source exists while the run is planned, so it is kept either way.
 */
export function noteCascades(planned: PlannedRegion[], policy: Readonly<Policy>): void {
  const removed = new Set(
    planned.flatMap((p) =>
      p.plan.actions.filter((a) => a.action === 'deregister').map((a) => sourceKey(p.region, a.imageId)),
    ),
  );
  if (removed.size === 0) return;
  for (const p of planned) {
    const sources = p.inventory.sources;
    if (!sources || ![...sources.live].some((k) => removed.has(k))) continue;
    p.inventory = { ...p.inventory, sources: { ...sources, removedInRun: removed } };
    p.plan = planRetention(p.inventory, policy, p.now, RETENTION_RULES, p.limits ? { limits: p.limits } : {});
  }
}
