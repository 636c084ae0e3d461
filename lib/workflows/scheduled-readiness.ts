import * as z from 'zod';
import { s3Client } from '../aws/clients.ts';
import { putJsonReport } from '../aws/reports.ts';
import type { Policy } from '../domain/policy.ts';
import { parseStep } from '../domain/replication-steps.ts';
import { readinessMetrics, type ReadinessMetric } from '../domain/readiness-metrics.ts';
import type { ReadinessSummary } from '../domain/readiness.ts';
import { accountOutcomes, reachesMembers } from '../domain/organization.ts';
import { accountsOfReach } from './organization.ts';
import { runReadiness } from './readiness.ts';
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
import { resultWriterDetailsSchema, runObjectKey, runObjectSchema, writeRunList, unitOutputs } from './run-data.ts';

/**
 * Scheduled readiness as a Step Functions run (statemachines/readiness.asl.json): a plan step lists the run's
 * accounts (home, then the organization's members) and their units (one per account and source region: each unit's
 * rows are its source images × every DR region), each unit computes its rows, re-drives and repairs in its own
 * invocation (its detail report in the report bucket; a member's re-drives start the home account's replication
 * for the member's image), and the aggregate step merges the units' summaries into the run's one report and one set
 * of metrics, with each account's outcome (`role-missing` when its role could not be assumed). A unit's stale-grant
 * retirement sees only its own copies' sharing: a DR region holding copies of another unit's sources keeps its
 * grants (nothing is retired on a partial view). The plan writes the units (bare account and region) to the runs
 * bucket, where the Distributed Map reads them (its ItemSelector adds the run to each); a unit's result is its
 * summary and counts, its detail report's location known from its key, and the Map's ResultWriter writes them all
 * to the runs bucket, where the aggregate step reads them (lib/workflows/run-data.ts): no state holds more than one
 * unit's data.
 */

export interface ReadinessDeps {
  policy: Readonly<Policy>;
  clientsFor: UnitClients;
  /** The deployment's (home) account. */
  accountId: string;
  homeRegion: string;
  /** The runs bucket (in the home region): the run's unit list and units' results. */
  runsBucket: string;
  /** The replicate state machine of a source region (re-drives start it). */
  stateMachineArnFor?: (sourceRegion: string) => string;
  clock?: () => number;
}

const runSchema = z.object({ name: z.string(), windowEnd: z.string() });

export const readinessUnitSchema = z.looseObject({ step: z.literal('unit'), unit: unitSchema, run: runSchema });

/** A unit's result: only what the aggregate needs of it. */
export interface ReadinessUnitResult {
  unit: WorkUnit;
  /** Readiness does its unit in one invocation: never more work. */
  more: false;
  summary: ReadinessSummary;
  redriven: number;
  repaired: number;
  /** The first few, cut short (the unit's detail report has them all). */
  reconcileErrors: string[];
}

const homeUnit = (deps: ReadinessDeps): WorkUnit => ({ accountId: deps.accountId, region: deps.homeRegion });

/** The plan step: the run's units, in every account of its reach. */
export async function planReadinessRun(deps: ReadinessDeps, input: { window: ScheduleWindow }) {
  const run = { name: input.window.name, windowEnd: input.window.end };
  const accounts = await accountsOfReach({
    clients: await deps.clientsFor(homeUnit(deps)),
    policy: deps.policy,
    homeAccountId: deps.accountId,
    ...(deps.clock ? { now: deps.clock } : {}),
  });
  const units = accountUnits(accounts, deps.policy.regions.sources);
  const s3 = s3Client(await deps.clientsFor(homeUnit(deps)), deps.homeRegion);
  return { run, units: await writeRunList(s3, deps.runsBucket, runObjectKey('readiness', run.name, 'units'), units) };
}

/** Where a unit's detail report is written in the report bucket. */
const unitReportKey = (prefix: string, run: { name: string }, unit: WorkUnit): string =>
  `${prefix}readiness/runs/${run.name}/${unit.accountId}-${unit.region}.json`;

/** One unit: readiness of its source region's images in every DR region, with reconciliation. */
export async function runReadinessUnit(
  deps: ReadinessDeps,
  state: z.infer<typeof readinessUnitSchema>,
): Promise<ReadinessUnitResult> {
  const { run } = state;
  const unit = { accountId: state.unit.accountId, region: state.unit.region };
  const policy = { ...deps.policy, regions: { ...deps.policy.regions, sources: [unit.region] } };
  const { reportBucket, reportPrefix } = policy.retention;
  const member = unit.accountId !== deps.accountId;
  const result = await runReadiness({
    clients: await deps.clientsFor(unit),
    policy,
    now: (deps.clock ?? Date.now)(),
    reconcile: true,
    // Rows name their account when the run spans several.
    ...(reachesMembers(policy) ? { account: unit.accountId } : {}),
    ...(member ? { homeClients: await deps.clientsFor(homeUnit(deps)) } : {}),
    ...(deps.stateMachineArnFor ? { stateMachineArnFor: deps.stateMachineArnFor } : {}),
    ...(reportBucket
      ? {
          report: {
            bucket: reportBucket,
            prefix: reportPrefix,
            region: deps.homeRegion,
            key: unitReportKey(reportPrefix, run, unit),
          },
        }
      : {}),
  });
  const r = result.reconciliation;
  const errors = (r?.errors ?? []).map((e) => `${e.action} ${e.imageId} (${e.region}): ${e.message}`);
  return {
    unit,
    more: false,
    summary: result.report.summary,
    redriven: r?.redriven.filter((x) => x.result === 'started').length ?? 0,
    repaired: r?.repaired.length ?? 0,
    reconcileErrors: briefMessages(errors, 'first'),
  };
}

export const readinessAggregateSchema = z.object({
  step: z.literal('aggregate'),
  run: runSchema,
  /** The run's unit list in the runs bucket. */
  units: runObjectSchema,
  /** Where the Distributed Map's ResultWriter wrote the units' results. */
  results: resultWriterDetailsSchema,
});

const unitOutputSchema = z.union([
  z.custom<ReadinessUnitResult>((v) => typeof v === 'object' && v !== null && 'summary' in v),
  failedUnitSchema,
]);

/** The units' summaries merged: counts add up, ratios and maxima are recomputed (the median is the units' median). */
export function mergeSummaries(summaries: readonly ReadinessSummary[]): ReadinessSummary {
  const [first] = summaries;
  if (!first)
    return {
      images: 0,
      cells: 0,
      counts: {} as ReadinessSummary['counts'],
      readyRatio: 1,
      imagesNotReady: 0,
      oldestUnprotectedAgeSeconds: 0,
      maxLagSeconds: 0,
      medianLagSeconds: 0,
    };
  const counts = Object.fromEntries(
    Object.keys(first.counts).map((k) => [
      k,
      summaries.reduce((n, s) => n + (s.counts as Record<string, number>)[k]!, 0),
    ]),
  ) as ReadinessSummary['counts'];
  const cells = summaries.reduce((n, s) => n + s.cells, 0);
  const medians = summaries.map((s) => s.medianLagSeconds).sort((a, b) => a - b);
  return {
    images: summaries.reduce((n, s) => n + s.images, 0),
    cells,
    counts,
    readyRatio: cells === 0 ? 1 : counts.ready / cells,
    imagesNotReady: summaries.reduce((n, s) => n + s.imagesNotReady, 0),
    oldestUnprotectedAgeSeconds: Math.max(...summaries.map((s) => s.oldestUnprotectedAgeSeconds)),
    maxLagSeconds: Math.max(...summaries.map((s) => s.maxLagSeconds)),
    medianLagSeconds: medians[Math.floor((medians.length - 1) / 2)] ?? 0,
  };
}

/** The run's one report (failed units listed) and one set of metrics. */
export async function aggregateReadinessRun(deps: ReadinessDeps, input: z.infer<typeof readinessAggregateSchema>) {
  const { reportBucket, reportPrefix } = deps.policy.retention;
  const home = s3Client(await deps.clientsFor(homeUnit(deps)), deps.homeRegion);
  const results = await unitOutputs(home, deps.runsBucket, input, unitOutputSchema);
  const done = results.filter((r): r is ReadinessUnitResult => 'summary' in r);
  const failures = results.flatMap((r) =>
    'failed' in r && r.failed
      ? [{ unit: r.unit, error: String(r.error ?? 'Error'), cause: String(r.cause ?? '') }]
      : [],
  );
  const summary = mergeSummaries(done.map((d) => d.summary));
  const accounts = accountsOfUnits(
    deps.accountId,
    [...done, ...failures].map((r) => r.unit),
  );
  const report = {
    job: 'readiness' as const,
    execution: input.run.name,
    windowEnd: input.run.windowEnd,
    summary,
    units: done.map(({ unit, summary: s, redriven, repaired, reconcileErrors }) => ({
      ...unit,
      summary: s,
      redriven,
      repaired,
      reconcileErrors,
      ...(reportBucket
        ? { reportLocation: `s3://${reportBucket}/${unitReportKey(reportPrefix, input.run, unit)}` }
        : {}),
    })),
    failures,
    /** Every account of the run, home first: `ok`, `role-missing` (its role could not be assumed) or `failed`. */
    accounts: accountOutcomes(accounts, failures),
  };
  const metrics: ReadinessMetric[] = readinessMetrics(
    { summary },
    done.reduce((n, d) => n + d.redriven, 0),
  );
  // Without a report bucket the whole report is kept with the run's data (the output may leave its units out).
  const key = reportBucket
    ? `${reportPrefix}readiness/runs/${input.run.name}/report.json`
    : runObjectKey('readiness', input.run.name, 'report');
  const reportLocation = await putJsonReport(home, reportBucket ?? deps.runsBucket, key, report);
  return { report: reportWithinQuota(report), reportLocation, metrics };
}

const planEventSchema = z.object({
  step: z.literal('plan'),
  window: z.object({ name: z.string(), start: z.string(), end: z.string() }),
});

/** A task of the readiness state machine: the events statemachines/readiness.asl.json hands its function. */
export const readinessTaskSchema = z.discriminatedUnion('step', [
  planEventSchema,
  readinessUnitSchema,
  readinessAggregateSchema,
]);
export type ReadinessTask = z.infer<typeof readinessTaskSchema>;

/** The event checked: anything but a task of the state machine is a `StepInputError` naming the field. */
export const parseReadinessTask = (event: unknown): ReadinessTask =>
  parseStep(readinessTaskSchema, event, 'readiness task');

/** Runs one task of the readiness state machine. */
export async function readinessTask(deps: ReadinessDeps, task: ReadinessTask) {
  if (task.step === 'plan') return planReadinessRun(deps, task);
  if (task.step === 'unit') return runReadinessUnit(deps, task);
  return aggregateReadinessRun(deps, task);
}

/** The run's one report, as the aggregate step returns and writes it. */
export type ReadinessRunReport = Awaited<ReturnType<typeof aggregateReadinessRun>>['report'];
