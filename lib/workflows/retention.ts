import { callerAccountId } from '../aws/account.ts';
import { type Clients, ec2Client, s3Client, stsClient } from '../aws/clients.ts';
import {
  addImageReferences,
  collectInventory,
  REQUIRED_PERMISSIONS as INVENTORY_PERMISSIONS,
} from '../aws/inventory.ts';
import { TokenBucketPacer } from '../aws/pacer.ts';
import { putJsonReport } from '../aws/reports.ts';
import { applyRetentionPlan, REQUIRED_PERMISSIONS as APPLY_PERMISSIONS } from '../aws/retention-apply.ts';
import type { Policy } from '../domain/policy.ts';
import type { RetentionInventory } from '../domain/retention-inventory.ts';
import { planRetention, type RetentionPlan } from '../domain/retention-planner.ts';
import { buildRetentionReport, type RetentionError, type RetentionReport } from '../domain/retention-report.ts';
import { awsErrorName } from '../domain/errors.ts';
import { closeRunJournal, openRunJournal, REQUIRED_PERMISSIONS as JOURNAL_PERMISSIONS } from './retention-journal.ts';

/**
 * One retention run in one region: inventory -> plan -> apply within the time budget -> report. The scheduled
 * Lambda, `ami-dr retention plan|apply` and the demo all call this.
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
  onProgress?: (done: number, total: number) => void;
  /** Back-off before the deletion journal retries what failed within the run (doubling); default 1 s. */
  journalBackoffMs?: number;
}

export interface RetentionRun {
  report: RetentionReport;
  plan: RetentionPlan;
  /** `s3://bucket/key` of the written report. */
  reportLocation?: string;
  /** Calls made, by kind: what a run costs. */
  calls: { describe: number; mutating: number };
}

export async function runRetention(options: RunRetentionOptions): Promise<RetentionRun> {
  const { clients, policy, region } = options;
  const clock = options.clock ?? Date.now;
  const startedAt = clock();
  const now =
    options.now === undefined ? startedAt : typeof options.now === 'number' ? options.now : options.now.getTime();
  const dryRun = policy.retention.dryRun || options.dryRun === true;
  const pacer = new TokenBucketPacer({
    now: clock,
    ...(options.sleep ? { sleep: options.sleep } : {}),
    scale: options.rateScale ?? 1,
  });

  const accountId = options.accountId ?? (await callerAccountId(stsClient(clients, region)));
  const journalStart = await openRunJournal({ ...options, pacer, dryRun });
  let inventory: RetentionInventory = await collectInventory(clients, {
    region,
    accountId,
    protectInUse: policy.retention.protectInUse,
    pacer,
  });
  let plan = planRetention(inventory, policy, now);
  // DescribeImageReferences only for the images the plan would act on: 1 call per 10 of them, not per image.
  if (policy.retention.protectInUse) {
    const candidates = plan.actions.filter((a) => a.action !== 'keep').map((a) => a.imageId);
    inventory = await addImageReferences(ec2Client(clients, region), inventory, candidates, pacer);
    plan = planRetention(inventory, policy, now);
  }

  const outcome = dryRun
    ? undefined
    : await applyRetentionPlan(plan, {
        ec2: ec2Client(clients, region),
        s3: s3Client(clients, region),
        pacer,
        ...(options.deadline !== undefined ? { deadline: options.deadline } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.concurrency ? { concurrency: options.concurrency } : {}),
      });

  const closed = await closeRunJournal({ ...options, pacer, dryRun, now }, plan, journalStart);
  const errors: RetentionError[] = [];
  const reportInput = { ...closed, plan, policy, dryRun, imageReferences: inventory.imageReferences, outcome, errors };
  let report = buildRetentionReport({ ...reportInput, startedAt, finishedAt: clock() });
  let reportLocation: string | undefined;
  const bucket = policy.retention.reportBucket;
  if (bucket && options.writeReport !== false) {
    const key = `${policy.retention.reportPrefix}retention/${region}/${report.startedAt.replace(/[:.]/g, '-')}${dryRun ? '-dry-run' : ''}.json`;
    try {
      reportLocation = await putJsonReport(s3Client(clients, region), bucket, key, report);
    } catch (error) {
      // The run's work is done; a lost report is an error to see, not a reason to undo or repeat the work.
      errors.push({
        step: 'report',
        code: awsErrorName(error) ?? 'Error',
        message: `could not write the report to s3://${bucket}/${key}: ${(error as Error).message}`,
      });
      report = buildRetentionReport({ ...reportInput, startedAt, finishedAt: clock() });
    }
  }
  return {
    report,
    plan,
    ...(reportLocation ? { reportLocation } : {}),
    calls: { describe: pacer.taken.describe, mutating: (outcome?.mutatingCalls ?? 0) + closed.journal.calls.mutating },
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
}

export interface ScheduledRetention {
  runs: RetentionRun[];
  /** Regions whose run failed outright (inventory unreadable, ...); the others still ran. */
  failures: RegionFailure[];
  /** Regions not started because the deadline had passed. */
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

/**
 * Retention over every region, one after the other, sharing the deadline: each region may use its share of the
 * time left (what one leaves unused passes to the next), so a region with a long backlog does not starve the
 * others. A region that fails does not stop the rest.
 */
export async function runRetentionEverywhere(
  options: Omit<RunRetentionOptions, 'region'> & { regions?: string[] },
): Promise<ScheduledRetention> {
  const clock = options.clock ?? Date.now;
  const regions = options.regions ?? retentionRegions(options.policy);
  const accountId = options.accountId ?? (await callerAccountId(stsClient(options.clients, regions[0] ?? 'us-east-1')));
  const result: ScheduledRetention = { runs: [], failures: [], skipped: [] };
  for (const [i, region] of regions.entries()) {
    const now = clock();
    const deadline = shareOfDeadline(options.deadline, now, regions.length - i);
    if (deadline !== undefined && deadline <= now) {
      result.skipped.push(...regions.slice(i));
      break;
    }
    try {
      result.runs.push(
        await runRetention({ ...options, region, accountId, ...(deadline !== undefined ? { deadline } : {}) }),
      );
    } catch (error) {
      result.failures.push({
        region,
        code: awsErrorName(error) ?? 'Error',
        message: (error as Error).message ?? String(error),
      });
    }
  }
  return result;
}
