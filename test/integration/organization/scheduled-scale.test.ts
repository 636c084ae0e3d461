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
 * The scheduled state machines at organization scale: a hundred accounts × six regions is 600 units, every one
 * planned, run and aggregated by the real tasks through the real ASL, under Step Functions' 256 KiB payload quota
 * (the twin fails the execution with States.DataLimitExceeded past it). The units' calls all go to the home account's
 * own (empty) regions, so each unit's work is real but quick; what is measured is the data the states pass.
 */
const START = Date.UTC(2026, 10, 30, 10, 5);
const HOME = '111122223333';
const ACCOUNTS = 100;
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
  // The measures the README's bound is stated from.
  console.log(`${job}: ${UNITS} units, data per state ${JSON.stringify(execution.dataBytes)}`);
  const output = JSON.parse(execution.output ?? 'null') as { report: { omitted?: unknown }; reportLocation?: string };
  // The run's whole report: in the bucket when there is one (the output's may leave its unit lists out).
  const report = output.reportLocation
    ? await getJsonReport(s3Client(r.clients, 'us-east-1'), output.reportLocation)
    : output.report;
  return { execution, largest, output, report };
}

const scope = { deprecateAfterDays: 30, deregisterAfterDays: 90, keepLatest: 1 };

describe('scheduled runs of an organization within the 256 KiB payload quota', () => {
  it.each([
    ['with the plan in the report bucket', { reportBucket: BUCKET }],
    ['with the plan inline', { reportBucket: undefined }],
  ])(
    'retention runs 600 units (100 accounts × 6 regions) %s',
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
      // 600 units' results are half the quota: about twice as many fit.
      expect(execution.dataBytes['Units']).toBeLessThan(STATE_DATA_LIMIT_BYTES * 0.6);
      expect(largest.bytes).toBeLessThan(STATE_DATA_LIMIT_BYTES * 0.8);
      expect(output.report.omitted).toBeUndefined();
    },
    300_000,
  );

  it('readiness runs 600 units (100 accounts × 6 source regions)', async () => {
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
    // The execution's output is the report without its 600 units' detail, which the bucket's report has.
    expect(output.report.omitted).toEqual({ units: 600 });
    const report = run.report as ReadinessRunReport;
    expect(report.summary).toMatchObject({ images: 0, cells: 0 });
    expect(report.units).toHaveLength(600);
    expect(report.failures).toEqual([]);
    expect(report.units[599]).toMatchObject({
      accountId: MEMBERS.at(-1),
      region: 'eu-central-1',
      reportLocation: `s3://${BUCKET}/ami-dr/reports/readiness/runs/${execution.name}/${MEMBERS.at(-1)}-eu-central-1.json`,
    });
    expect(execution.dataBytes['Units']).toBeLessThan(STATE_DATA_LIMIT_BYTES * 0.8);
    expect(largest.bytes).toBeLessThan(STATE_DATA_LIMIT_BYTES * 0.8);
  }, 300_000);
});
