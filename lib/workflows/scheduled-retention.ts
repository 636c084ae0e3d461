import * as z from 'zod';
import { s3Client } from '../aws/clients.ts';
import { getJsonReport, putJsonReport } from '../aws/reports.ts';
import { awsErrorName } from '../domain/errors.ts';
import { policyVersion, type Policy } from '../domain/policy.ts';
import { parseStep } from '../domain/replication-steps.ts';
import { retentionMetrics, type RetentionMetric, type RetentionReport } from '../domain/retention-report.ts';
import { parseSavedPlan, toSavedPlan, type SavedPlan, type SavedRegionPlan } from '../domain/saved-plan.ts';
import { accountOutcomes } from '../domain/organization.ts';
import type { AccountOutcome } from '../domain/readiness.ts';
import { accountsOfReach } from './organization.ts';
import { forEachLimited } from './concurrency.ts';
import {
  applyRegion,
  noteCascades,
  planRegion,
  retentionRegions,
  retentionReportKey,
  type PlannedRegion,
} from './retention.ts';
import {
  accountsOfUnits,
  accountUnits,
  briefMessages,
  reportWithinQuota,
  type ScheduleWindow,
  type UnitClients,
  type WorkUnit,
} from './units.ts';
import { failedUnitSchema, unitSchema } from './unit-schemas.ts';
import {
  resultWriterDetailsSchema,
  runObjectKey,
  runObjectSchema,
  writeRunList,
  readRunList,
  unitOutputs,
  type RunObject,
} from './run-data.ts';

/**
 * Scheduled retention as a Step Functions run (statemachines/retention.asl.json), in three steps:
 *
 * - Plan: the run's accounts listed (home, then the organization's members), every unit (account × region)
 *   inventoried and planned before anything changes, cascades noted across an account's units (a DR copy whose
 *   source this run removes is kept, left to a later run), and the whole plan stored: in the report bucket when the
 *   policy names one (per account, the same saved-plan document `ami-dr retention plan --output` writes), else
 *   inline in each unit's item (its deprecations and removals only: what limits the unit). A member whose role
 *   cannot be assumed fails its units there (`MemberRoleMissingError`); the others go on. The unit list (account,
 *   region, the inline plan) and the failures are written to the runs bucket (lib/workflows/run-data.ts): the
 *   Distributed Map reads the units there (ItemReader), and its ItemSelector adds the run to each.
 * - Unit (a child execution of the Distributed Map): one invocation applies the unit's plan within its time budget,
 *   re-planning afresh and doing only what both plans want (the saved-plan rule), so a unit never does what the plan
 *   did not list. Work left when the budget runs out is returned as `more`, and the state machine invokes the unit
 *   again, until it is done, makes no progress, or the run's window closes. The unit ends in a small result record
 *   (its counts, when its reports began, its last errors cut short), which the Map's ResultWriter writes to the runs
 *   bucket with every other's: no state holds more than one unit's data, whatever the number of units.
 * - Aggregate: the results read back, one report of the run and one set of metrics, failed units included, each
 *   account's outcome listed.
 */

/**
 * A unit's item (the unit with its inline plan) above this size would crowd Step Functions' 256 KiB payload limit:
 * with the run, it is the unit's execution input.
 */
export const INLINE_PLAN_LIMIT_BYTES = 200_000;

/**
 * Units inventoried at once by the plan step: each account and region has its own EC2 rate limits, so planning units
 * side by side shortens the step; bounded, so an organization's thousand units do not open a thousand inventories
 * (and queue on the clients' sockets) at once.
 */
const PLAN_CONCURRENCY = 16;

export class PlanTooLargeError extends Error {
  override name = 'PlanTooLargeError';
}

export class UnitNotPlannedError extends Error {
  override name = 'UnitNotPlannedError';
}

export interface ScheduledDeps {
  policy: Readonly<Policy>;
  clientsFor: UnitClients;
  /** The deployment's (home) account: it lists the members, and the run's plan and report are written with it. */
  accountId: string;
  /** Where the run's plan and report are written. */
  homeRegion: string;
  /** The runs bucket (in the home region): the run's unit list, failures and units' results. */
  runsBucket: string;
  clock?: () => number;
  sleep?: (ms: number) => Promise<void>;
  rateScale?: number;
  concurrency?: number;
}

const runSchema = z.object({
  name: z.string(),
  windowEnd: z.string(),
  now: z.string(),
  dryRun: z.boolean(),
  planLocation: z.string().optional(),
});
export type RetentionRunRef = z.infer<typeof runSchema>;

/** A unit as the plan lists it: its account and region, and without a report bucket its part of the plan inline. */
const unitItemSchema = unitSchema.extend({ plan: z.custom<SavedRegionPlan>().optional() });
export type UnitItem = z.infer<typeof unitItemSchema>;

const progressSchema = z.object({
  iterations: z.number(),
  deprecated: z.number(),
  removed: z.number(),
  errors: z.number(),
  gibFreed: z.number(),
  pending: z.number(),
  /** When the last invocation stopped (epoch ms): with work left, it had spent EC2's rate buckets until then. */
  endedAt: z.number().optional(),
  /** When the last few invocations that wrote a report began: their reports' keys (`retentionReportKey`). */
  reportsStartedAt: z.array(z.string()),
  lastErrors: z.array(z.string()),
});
export type UnitProgress = z.infer<typeof progressSchema>;

/** A unit's execution (its item and the run, as the ItemSelector makes it), with `progress` between invocations. */
export const unitStateSchema = z.looseObject({
  step: z.literal('unit'),
  unit: unitItemSchema,
  run: runSchema,
  progress: progressSchema.optional(),
  more: z.boolean().optional(),
  status: z.enum(['continuing', 'done', 'left-for-next-run']).optional(),
});
export type UnitState = z.infer<typeof unitStateSchema>;

/** A unit's Map result: only what the aggregate needs of it. */
const unitResultSchema = z.object({
  unit: unitSchema,
  more: z.literal(false),
  status: z.enum(['done', 'left-for-next-run']),
  progress: progressSchema.omit({ endedAt: true }),
});
export type UnitResult = z.infer<typeof unitResultSchema>;

export interface UnitFailure {
  unit: WorkUnit;
  step: 'plan' | 'unit';
  error: string;
  cause: string;
}

/** The plan step's result: the run, and where its unit list and failures are in the runs bucket. */
export interface RetentionPlanOutput {
  run: RetentionRunRef;
  units: RunObject;
  failures: RunObject;
}

/** The plan step: every unit planned, cascades noted, the plan stored; nothing changes. */
export async function planRetentionRun(
  deps: ScheduledDeps,
  input: { window: ScheduleWindow; dryRun?: boolean },
  deadline?: number,
): Promise<RetentionPlanOutput> {
  const { policy } = deps;
  const clock = deps.clock ?? Date.now;
  const now = clock();
  const accounts = await accountsOfReach({
    clients: await deps.clientsFor(homeUnit(deps)),
    policy,
    homeAccountId: deps.accountId,
    now: clock,
    ...(deps.sleep ? { sleep: deps.sleep } : {}),
  });
  const units = accountUnits(accounts, retentionRegions(policy));
  const failures: UnitFailure[] = [];
  const planned: { unit: WorkUnit; planned: PlannedRegion }[] = [];
  await forEachLimited(units, PLAN_CONCURRENCY, async (unit) => {
    try {
      const clients = await deps.clientsFor(unit);
      const options = { ...unitOptions(deps, unit, now), clients, ...(deadline ? { deadline } : {}) };
      planned.push({ unit, planned: await planRegion(options) });
    } catch (error) {
      failures.push(failure(unit, 'plan', error));
    }
  });
  planned.sort((a, b) => units.indexOf(a.unit) - units.indexOf(b.unit));
  for (const accountId of new Set(planned.map((p) => p.unit.accountId)))
    noteCascades(
      planned.filter((p) => p.unit.accountId === accountId).map((p) => p.planned),
      policy,
    );
  // One saved plan per account (the home account's always, empty when none of its units could be planned).
  const saved = new Map(
    accounts.map((accountId) => {
      const own = planned.filter((p) => p.unit.accountId === accountId);
      if (own.length === 0 && accountId !== deps.accountId) return [accountId, undefined] as const;
      const plan = toSavedPlan({
        policy: { name: policy.name, version: policyVersion(policy) },
        accountId,
        now: new Date(now).toISOString(),
        regions: own.map(({ planned: p }) => ({ plan: p.plan, fingerprint: p.fingerprint || 'inventory-unfinished' })),
      });
      return [accountId, plan] as const;
    }),
  );
  const run: RetentionRunRef = {
    name: input.window.name,
    windowEnd: input.window.end,
    now: new Date(now).toISOString(),
    dryRun: policy.retention.dryRun || input.dryRun === true,
  };
  const stored = await storePlan(deps, run, saved, planned);
  for (const item of stored.units) {
    const size = Buffer.byteLength(JSON.stringify(item));
    if (size > INLINE_PLAN_LIMIT_BYTES)
      throw new PlanTooLargeError(
        `the plan of ${item.accountId}/${item.region} is ${Math.ceil(size / 1024)} KiB, too large to pass to its unit; set retention.reportBucket to store it in S3`,
      );
  }
  const s3 = s3Client(await deps.clientsFor(homeUnit(deps)), deps.homeRegion);
  return {
    run: stored.run,
    units: await writeRunList(s3, deps.runsBucket, runObjectKey('retention', run.name, 'units'), stored.units),
    failures: await writeRunList(s3, deps.runsBucket, runObjectKey('retention', run.name, 'failures'), failures),
  };
}

const homeUnit = (deps: ScheduledDeps): WorkUnit => ({ accountId: deps.accountId, region: deps.homeRegion });

/** Where an account's part of a run's stored plan is: the home account's at the run's `planLocation`, a member's beside it. */
export function accountPlanLocation(planLocation: string, accountId: string, homeAccountId: string): string {
  return accountId === homeAccountId ? planLocation : planLocation.replace(/plan\.json$/, `${accountId}/plan.json`);
}

/** The plan in the report bucket (the units read it there), else each unit's part inline in its Map item. */
async function storePlan(
  deps: ScheduledDeps,
  run: RetentionRunRef,
  saved: ReadonlyMap<string, SavedPlan | undefined>,
  planned: { unit: WorkUnit }[],
): Promise<{ run: RetentionRunRef; units: UnitItem[] }> {
  const { reportBucket, reportPrefix } = deps.policy.retention;
  if (reportBucket) {
    const s3 = s3Client(await deps.clientsFor(homeUnit(deps)), deps.homeRegion);
    const planLocation = `s3://${reportBucket}/${reportPrefix}retention/runs/${run.name}/plan.json`;
    for (const [accountId, plan] of saved) {
      const location = accountPlanLocation(planLocation, accountId, deps.accountId);
      if (plan) await putJsonReport(s3, reportBucket, location.slice(`s3://${reportBucket}/`.length), plan);
    }
    return { run: { ...run, planLocation }, units: planned.map(({ unit }) => unit) };
  }
  const units: UnitItem[] = planned.map(({ unit }) => {
    const plan = saved.get(unit.accountId)?.plans.find((p) => p.region === unit.region);
    const acting = plan ? { ...plan, actions: plan.actions.filter((a) => a.action !== 'keep') } : undefined;
    return { ...unit, ...(acting ? { plan: acting } : {}) };
  });
  return { run, units };
}

function unitOptions(deps: ScheduledDeps, unit: WorkUnit, now: number) {
  return {
    policy: deps.policy,
    region: unit.region,
    accountId: unit.accountId,
    now,
    writeReport: true,
    ...(deps.clock ? { clock: deps.clock } : {}),
    ...(deps.sleep ? { sleep: deps.sleep } : {}),
    ...(deps.rateScale ? { rateScale: deps.rateScale } : {}),
    ...(deps.concurrency ? { concurrency: deps.concurrency } : {}),
  };
}

function failure(unit: WorkUnit, step: UnitFailure['step'], error: unknown): UnitFailure {
  const cause = briefMessages([(error as Error).message ?? String(error)], 'first')[0] ?? '';
  return { unit, step, error: awsErrorName(error) ?? 'Error', cause };
}

/**
 * One invocation of a unit: its part of the stored plan applied within `budgetDeadline` (the Lambda's time left)
 * and the run's window. Returns the unit's state with `more: true` when work is left, progress was made and the
 * window is still open: the state machine then invokes it again with that state.
 */
export async function runRetentionUnit(deps: ScheduledDeps, state: UnitState, budgetDeadline?: number) {
  const clock = deps.clock ?? Date.now;
  const { run } = state;
  const { plan: inline, ...unit } = state.unit;
  const plan = inline ?? (await readUnitPlan(deps, run, unit));
  const deadline = Math.min(budgetDeadline ?? Number.POSITIVE_INFINITY, Date.parse(run.windowEnd));
  const clients = await deps.clientsFor(unit);
  // A member's reports go to the home account's bucket, written as the home account.
  const member = unit.accountId !== deps.accountId && deps.policy.retention.reportBucket;
  const options = {
    ...unitOptions(deps, unit, Date.parse(run.now)),
    clients,
    ...(member ? { reportClients: await deps.clientsFor(homeUnit(deps)) } : {}),
    dryRun: run.dryRun,
    ...(Number.isFinite(deadline) ? { deadline } : {}),
    ...(state.progress?.pending && state.progress.endedAt ? { drainedAt: state.progress.endedAt } : {}),
  };
  const result = await applyRegion(await planRegion(options, plan), options);
  const progress = addProgress(state.progress, result.report, result.reportLocation !== undefined);
  const { pending, deprecated, removed } = result.report.counts;
  if (pending > 0 && deprecated + removed > 0 && clock() < Date.parse(run.windowEnd))
    return {
      ...state,
      progress: { ...progress, endedAt: clock() },
      more: true,
      status: 'continuing',
    } satisfies UnitState;
  // A finished unit's result is written by the Map's ResultWriter with every other's: its counts, no plan, no run.
  return { unit, more: false, status: pending > 0 ? 'left-for-next-run' : 'done', progress } satisfies UnitResult;
}

async function readUnitPlan(deps: ScheduledDeps, run: RetentionRunRef, unit: WorkUnit): Promise<SavedRegionPlan> {
  if (!run.planLocation) throw new UnitNotPlannedError(`no plan for ${unit.accountId}/${unit.region}`);
  const location = accountPlanLocation(run.planLocation, unit.accountId, deps.accountId);
  const doc = await getJsonReport(s3Client(await deps.clientsFor(homeUnit(deps)), deps.homeRegion), location);
  const saved = parseSavedPlan(JSON.stringify(doc), location);
  const plan = saved.plans.find((p) => p.region === unit.region);
  if (!plan) throw new UnitNotPlannedError(`${location} has no plan for ${unit.region}`);
  return plan;
}

function addProgress(before: UnitProgress | undefined, report: RetentionReport, reported: boolean): UnitProgress {
  const p = before ?? {
    iterations: 0,
    deprecated: 0,
    removed: 0,
    errors: 0,
    gibFreed: 0,
    pending: 0,
    reportsStartedAt: [],
    lastErrors: [],
  };
  return {
    iterations: p.iterations + 1,
    deprecated: p.deprecated + report.counts.deprecated,
    removed: p.removed + report.counts.removed,
    errors: p.errors + report.counts.errors,
    gibFreed: Math.round((p.gibFreed + report.gibFreed) * 1000) / 1000,
    pending: report.counts.pending,
    // Bounded: the state passes between states on every iteration, and ends in the unit's result.
    reportsStartedAt: [...p.reportsStartedAt, ...(reported ? [report.startedAt] : [])].slice(-3),
    lastErrors: briefMessages([...p.lastErrors, ...report.errors.map((e) => `${e.code}: ${e.message}`)], 'last'),
  };
}

export const aggregateSchema = z.object({
  step: z.literal('aggregate'),
  run: runSchema,
  /** The run's unit list and the units it could not plan, in the runs bucket. */
  units: runObjectSchema,
  failures: runObjectSchema,
  /** Where the Distributed Map's ResultWriter wrote the units' results. */
  results: resultWriterDetailsSchema,
});

const unitOutputSchema = z.union([unitResultSchema, failedUnitSchema]);

export interface RetentionRunReport {
  job: 'retention';
  execution: string;
  windowEnd: string;
  dryRun: boolean;
  planLocation?: string;
  units: (WorkUnit &
    Omit<UnitProgress, 'lastErrors' | 'reportsStartedAt' | 'endedAt'> & {
      /** The unit's last few reports (each invocation writes one). */
      reportLocations: string[];
      status: string;
      errorMessages: string[];
    })[];
  failures: UnitFailure[];
  /** Every account of the run, home first: `ok`, `role-missing` (its role could not be assumed) or `failed`. */
  accounts: AccountOutcome[];
  totals: { deprecated: number; removed: number; gibFreed: number; pending: number; errors: number };
}

/** The run's one report (written beside its plan) and one set of metrics. */
export async function aggregateRetentionRun(
  deps: ScheduledDeps,
  input: z.infer<typeof aggregateSchema>,
): Promise<{ report: RetentionRunReport; reportLocation?: string; metrics: RetentionMetric[] }> {
  const { run } = input;
  const { reportBucket, reportPrefix } = deps.policy.retention;
  const home = s3Client(await deps.clientsFor(homeUnit(deps)), deps.homeRegion);
  const results = await unitOutputs(home, deps.runsBucket, input, unitOutputSchema);
  const recorded = z.array(z.custom<UnitFailure>()).parse(await readRunList(home, deps.runsBucket, input.failures));
  const done = results.filter((r): r is UnitResult => !('failed' in r && r.failed));
  const failures = [
    ...recorded,
    ...results.flatMap((r) =>
      'failed' in r && r.failed
        ? [{ unit: r.unit, step: 'unit' as const, error: String(r.error ?? 'Error'), cause: String(r.cause ?? '') }]
        : [],
    ),
  ];
  const units = done.map(({ unit, progress, status }) => {
    const { lastErrors, reportsStartedAt, ...counts } = progress;
    // A member's reports are under its account in the home account's bucket (as runRetentionUnit writes them).
    const account = unit.accountId !== deps.accountId ? unit.accountId : undefined;
    const reportLocations = reportBucket
      ? reportsStartedAt.map(
          (startedAt) =>
            `s3://${reportBucket}/${retentionReportKey(reportPrefix, { account, region: unit.region, startedAt, dryRun: run.dryRun })}`,
        )
      : [];
    return { ...unit, ...counts, reportLocations, status, errorMessages: lastErrors };
  });
  const sum = (f: (u: (typeof units)[number]) => number) => units.reduce((n, u) => n + f(u), 0);
  const report: RetentionRunReport = {
    job: 'retention',
    execution: run.name,
    windowEnd: run.windowEnd,
    dryRun: run.dryRun,
    ...(run.planLocation ? { planLocation: run.planLocation } : {}),
    units,
    failures,
    accounts: accountOutcomes(accountsOfUnits(deps.accountId, [...units, ...failures.map((f) => f.unit)]), failures),
    totals: {
      deprecated: sum((u) => u.deprecated),
      removed: sum((u) => u.removed),
      gibFreed: Math.round(sum((u) => u.gibFreed) * 1000) / 1000,
      pending: sum((u) => u.pending),
      errors: sum((u) => u.errors) + failures.length,
    },
  };
  const metrics = retentionMetrics(
    units.map((u) => ({ dryRun: run.dryRun, gibFreed: u.gibFreed, counts: u })),
    failures.length,
  );
  // Without a report bucket the whole report is kept with the run's data (the output may leave its units out).
  const key = reportBucket
    ? `${reportPrefix}retention/runs/${run.name}/report.json`
    : runObjectKey('retention', run.name, 'report');
  const reportLocation = await putJsonReport(home, reportBucket ?? deps.runsBucket, key, report);
  return { report: reportWithinQuota(report), reportLocation, metrics };
}

const planEventSchema = z.object({
  step: z.literal('plan'),
  window: z.object({ name: z.string(), start: z.string(), end: z.string() }),
  dryRun: z.boolean().optional(),
});

/** A task of the retention state machine: the events statemachines/retention.asl.json hands its function. */
export const retentionTaskSchema = z.discriminatedUnion('step', [planEventSchema, unitStateSchema, aggregateSchema]);
export type RetentionTask = z.infer<typeof retentionTaskSchema>;

/** The event checked: anything but a task of the state machine is a `StepInputError` naming the field. */
export const parseRetentionTask = (event: unknown): RetentionTask =>
  parseStep(retentionTaskSchema, event, 'retention task');

/** Runs one task of the retention state machine; `budgetDeadline`: epoch ms by which the invocation must be done. */
export async function retentionTask(deps: ScheduledDeps, task: RetentionTask, budgetDeadline?: number) {
  if (task.step === 'plan') return planRetentionRun(deps, task, budgetDeadline);
  if (task.step === 'unit') return runRetentionUnit(deps, task, budgetDeadline);
  return aggregateRetentionRun(deps, task);
}
