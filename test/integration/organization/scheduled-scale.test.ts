import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { s3Client } from '../../../lib/aws/clients.ts';
import { getJsonReport } from '../../../lib/aws/reports.ts';
import { parsePolicy, type Policy } from '../../../lib/domain/policy.ts';
import type { ReadinessRunReport } from '../../../lib/workflows/scheduled-readiness.ts';
import type { RetentionRunReport } from '../../../lib/workflows/scheduled-retention.ts';
import type { ScheduledJob } from '../../../lib/workflows/units.ts';
import { startLocalRuntime, type LocalRuntime } from '../../../local/runtime/runtime.ts';
import { ManualClock } from '../../../local/twin/clock.ts';
import { STATE_DATA_LIMIT_BYTES } from '../../../local/twin/stepfunctions.ts';

/**
 * The scheduled state machines at organization scale: two hundred accounts × six regions is 1,200 units, every one
 * planned, run and aggregated by the real tasks through the real ASL, under Step Functions' 256 KiB payload quota
 * (the twin fails the execution with States.DataLimitExceeded past it). An inline Map held every unit's result in one
 * state and failed past about 1,000 retention units (950 without a report bucket) and 750 readiness units; the
 * Distributed Map keeps the unit list and the results in the runs bucket, so no state's data grows with the units.
 * The units' calls all go to the home account's own (empty) regions, so each unit's work is real but quick; what is
 * measured is the data the states pass.
 */
const START = Date.UTC(2026, 10, 30, 10, 5);
const HOME = '111122223333';
const ACCOUNTS = 200;
const MEMBERS = Array.from({ length: ACCOUNTS - 1 }, (_, i) => String(200000000000 + i * 1_000_003));
const UNITS = ACCOUNTS * 6;
const REGIONS = ['us-east-1', 'us-east-2', 'us-west-1', 'us-west-2', 'eu-west-1', 'eu-central-1'];
const BUCKET = 'ami-dr-reports';

let rt: LocalRuntime | undefined;
afterEach(async () => {
  await rt?.stop();
  rt = undefined;
});

async function runtime(policy: Readonly<Policy>): Promise<LocalRuntime> {
  rt = await startLocalRuntime({
    policy,
    clock: new ManualClock(START),
    twinOptions: { s3: true, accountId: HOME },
    // Every account's unit works in the home account's empty regions: the real task, quickly.
    unitClients: (fn) => () => rt!.clientsFor(fn),
  });
  if (policy.retention.reportBucket)
    await s3Client(rt.clients, 'us-east-1').send(new CreateBucketCommand({ Bucket: policy.retention.reportBucket }));
  return rt;
}

async function runToEnd(r: LocalRuntime, job: ScheduledJob) {
  const started = await r.startScheduled(job);
  await r.stepFunctions.execution(started.executionArn)!.done;
  const execution = r.stepFunctions.execution(started.executionArn)!;
  const largest = execution.largestData!;
  // The measures the README's figures are stated from.
  const twinSeconds = (execution.stopDate! - execution.startDate) / 1000;
  console.log(
    `${job}: ${UNITS} units, ${twinSeconds} s of twin time, data per state ${JSON.stringify(execution.dataBytes)}`,
  );
  const output = JSON.parse(execution.output ?? 'null') as { report: { omitted?: unknown }; reportLocation: string };
  // The run's whole report, in the report bucket or else with the run's data (the output's leaves its units out).
  const report = await getJsonReport(s3Client(r.clients, 'us-east-1'), output.reportLocation);
  return { execution, largest, output, report };
}

const scope = { deprecateAfterDays: 30, deregisterAfterDays: 90, keepLatest: 1 };

/** No state's data grows with the number of units: the Map's own, each unit's, and the report the output carries. */
function expectBoundedData(execution: { dataBytes: Record<string, number> }, largest: { bytes: number }) {
  for (const state of ['Plan', 'Units', 'RunUnit', 'MoreWork?', 'UnitDone'])
    expect(execution.dataBytes[state], state).toBeLessThan(2_000);
  expect(largest.bytes).toBeLessThan(STATE_DATA_LIMIT_BYTES * 0.8);
}

describe('scheduled runs of an organization within the 256 KiB payload quota', () => {
  it.each([
    ['with the plan in the report bucket', { reportBucket: BUCKET }],
    ['with the plan inline', { reportBucket: undefined }],
  ])(
    'retention runs 1,200 units (200 accounts × 6 regions) %s',
    async (_, store) => {
      const policy = parsePolicy({
        accounts: MEMBERS,
        regions: {
          sources: REGIONS.slice(0, 1),
          dr: REGIONS.slice(1).map((region) => ({ region, kmsKeyId: 'alias/ami-dr' })),
        },
        retention: { sources: scope, replicas: scope, ...store },
      });
      const r = await runtime(policy);

      const { execution, largest, output, ...run } = await runToEnd(r, 'retention');

      expect(execution.error).toBeUndefined();
      expect(execution.status).toBe('SUCCEEDED');
      const report = run.report as RetentionRunReport;
      expect(report.units).toHaveLength(UNITS);
      expect(report.failures).toEqual([]);
      expect(report.units.every((u) => u.status === 'done' && u.iterations === 1)).toBe(true);
      expect(report.accounts).toHaveLength(ACCOUNTS);
      expect(report.units[UNITS - 1]!.reportLocations).toEqual(
        store.reportBucket
          ? [
              expect.stringMatching(
                new RegExp(`^s3://${BUCKET}/ami-dr/reports/retention/${MEMBERS.at(-1)}/eu-central-1/`),
              ),
            ]
          : [],
      );
      expectBoundedData(execution, largest);
      // The execution's output is the report without its units' detail, which the stored report has.
      expect(output.report.omitted).toEqual({ units: UNITS });
      expect(output.reportLocation).toMatch(
        store.reportBucket ? new RegExp(`^s3://${BUCKET}/`) : new RegExp(`^s3://${r.runsBucket}/retention/runs/`),
      );
    },
    600_000,
  );

  it('readiness runs 1,200 units (200 accounts × 6 source regions)', async () => {
    const policy = parsePolicy({
      accounts: MEMBERS,
      regions: { sources: REGIONS.slice(0, 6), dr: [{ region: 'ca-central-1', kmsKeyId: 'alias/ami-dr' }] },
      retention: { reportBucket: BUCKET },
    });
    const r = await runtime(policy);
    r.twin.seed.key('ca-central-1', { alias: 'ami-dr' });

    const { execution, largest, output, ...run } = await runToEnd(r, 'readiness');

    expect(execution.error).toBeUndefined();
    expect(execution.status).toBe('SUCCEEDED');
    // The execution's output is the report without its units' detail, which the bucket's report has.
    expect(output.report.omitted).toEqual({ units: UNITS });
    const report = run.report as ReadinessRunReport;
    expect(report.summary).toMatchObject({ images: 0, cells: 0 });
    expect(report.units).toHaveLength(UNITS);
    expect(report.failures).toEqual([]);
    expect(report.accounts).toHaveLength(ACCOUNTS);
    expect(report.units[UNITS - 1]).toMatchObject({
      accountId: MEMBERS.at(-1),
      region: 'eu-central-1',
      reportLocation: `s3://${BUCKET}/ami-dr/reports/readiness/runs/${execution.name}/${MEMBERS.at(-1)}-eu-central-1.json`,
    });
    expectBoundedData(execution, largest);
  }, 600_000);
});
