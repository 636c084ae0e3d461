import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { DescribeImagesCommand } from '@aws-sdk/client-ec2';
import { createClients, ec2Client, s3Client } from '../../../lib/aws/clients.ts';
import { getJsonReport } from '../../../lib/aws/reports.ts';
import { parsePolicy, type Policy } from '../../../lib/domain/policy.ts';
import type { SavedPlan } from '../../../lib/domain/saved-plan.ts';
import { TAG } from '../../../lib/domain/tags.ts';
import { runRetentionEverywhere } from '../../../lib/workflows/retention.ts';
import type { RetentionRunReport } from '../../../lib/workflows/scheduled-retention.ts';
import { startLocalRuntime, type LocalRuntime, type LocalRuntimeOptions } from '../../../local/runtime/runtime.ts';
import { ManualClock } from '../../../local/twin/clock.ts';

/**
 * Scheduled retention as the deployed stack runs it: the schedule's starter names the execution after its window,
 * the retention state machine plans every unit (account × region) first, applies each unit's part of that plan in
 * invocations that loop until done, and aggregates one report and one set of metrics.
 */

const SOURCE = 'us-east-1';
const DR = ['us-west-2', 'eu-west-1'];
const START = Date.UTC(2026, 10, 30, 10, 5);
const DAY = 86_400_000;
const BUCKET = 'ami-dr-reports';

function policyWith(retention: Record<string, unknown> = {}): Readonly<Policy> {
  const scope = { deprecateAfterDays: 30, deregisterAfterDays: 90, keepLatest: 1 };
  return parsePolicy({
    regions: { sources: [SOURCE], dr: DR.map((region) => ({ region, kmsKeyId: 'alias/ami-dr' })) },
    retention: { sources: scope, replicas: scope, ...retention },
  });
}

let rt: LocalRuntime | undefined;
afterEach(async () => {
  await rt?.stop();
  rt = undefined;
});

async function runtime(policy: Readonly<Policy>, extra: Partial<LocalRuntimeOptions> = {}): Promise<LocalRuntime> {
  rt = await startLocalRuntime({ policy, clock: new ManualClock(START), twinOptions: { s3: true }, ...extra });
  if (policy.retention.reportBucket)
    await s3Client(rt.clients, SOURCE).send(new CreateBucketCommand({ Bucket: policy.retention.reportBucket }));
  return rt;
}

/**
 * An aged family in the source region and in each DR region, and in us-west-2 a copy of the source's oldest image
 * (aged too): the source goes in this run, so the copy must wait for a later one (a cascade planned, not found).
 */
function seedAged(r: LocalRuntime, perRegion = 4): { cascadeCopy: string; source: string } {
  const images: Record<string, string[]> = {};
  for (const region of [SOURCE, ...DR]) {
    images[region] = Array.from({ length: perRegion }, (_, i) =>
      r.twin.seed.image(region, { name: `web-1.${i}.0`, creationDate: START - (200 - i) * DAY }),
    );
  }
  const source = images[SOURCE]![0]!;
  const cascadeCopy = r.twin.seed.image('us-west-2', {
    name: 'web-copy-1.0.0',
    creationDate: START - 199 * DAY,
    tags: { [TAG.role]: 'replica', [TAG.sourceImageId]: source, [TAG.sourceRegion]: SOURCE },
  });
  // The family's newest copy (of the source's newest image, which stays): kept either way.
  r.twin.seed.image('us-west-2', {
    name: 'web-copy-1.1.0',
    creationDate: START - 150 * DAY,
    tags: { [TAG.role]: 'replica', [TAG.sourceImageId]: images[SOURCE]!.at(-1)!, [TAG.sourceRegion]: SOURCE },
  });
  return { cascadeCopy, source };
}

async function registered(r: LocalRuntime, region: string): Promise<Set<string>> {
  const out = await ec2Client(r.clients, region).send(
    new DescribeImagesCommand({ Owners: ['self'], IncludeDeprecated: true, MaxResults: 1000 }),
  );
  return new Set((out.Images ?? []).map((i) => i.ImageId!));
}

async function runToEnd(r: LocalRuntime, options: { time?: number; dryRun?: boolean } = {}) {
  const started = await r.startScheduled('retention', options);
  await r.waitForIdle();
  const execution = r.stepFunctions.execution(started.executionArn)!;
  return { started, execution, output: JSON.parse(execution.output ?? 'null') as { report: RetentionRunReport } };
}

describe('scheduled retention on Step Functions', () => {
  it('applies exactly the plan made before anything changed, across units, cascade included', async () => {
    const policy = policyWith({ reportBucket: BUCKET });
    const r = await runtime(policy);
    const { cascadeCopy, source } = seedAged(r);
    // The single-Lambda plan of the same account: what the run must remove, no more, no less.
    const preview = await runRetentionEverywhere({
      clients: r.clientsFor('retention'),
      policy,
      dryRun: true,
      accountId: r.twin.accountId,
      clock: () => r.twin.clock.now(),
    });
    const planned = new Map(
      preview.runs.map((run) => [
        run.plan.region,
        run.plan.actions.filter((a) => a.action === 'deregister').map((a) => a.imageId),
      ]),
    );
    const before = new Map(await Promise.all([SOURCE, ...DR].map(async (g) => [g, await registered(r, g)] as const)));

    const { execution, output } = await runToEnd(r);

    expect(execution.status).toBe('SUCCEEDED');
    expect(execution.name).toBe('retention-2026-11-30T10');
    for (const region of [SOURCE, ...DR]) {
      const after = await registered(r, region);
      const removed = [...before.get(region)!].filter((id) => !after.has(id)).sort();
      expect(removed, region).toEqual([...planned.get(region)!].sort());
    }
    expect(planned.get(SOURCE)).toContain(source);
    expect(await registered(r, 'us-west-2')).toContain(cascadeCopy);
    const plan = (await getJsonReport(s3Client(r.clients, SOURCE), output.report.planLocation!)) as SavedPlan;
    const kept = plan.plans.find((p) => p.region === 'us-west-2')!.actions.find((a) => a.imageId === cascadeCopy);
    expect(kept).toMatchObject({ action: 'keep', detail: expect.stringContaining('goes in a later run') });
    expect(output.report.units.map((u) => [u.region, u.status])).toEqual([
      [SOURCE, 'done'],
      ['us-west-2', 'done'],
      ['eu-west-1', 'done'],
    ]);
    expect(output.report.totals.removed).toBe([...planned.values()].flat().length);
    const metrics = Object.fromEntries(r.metrics.map((m) => [m.name, m.value]));
    expect(metrics).toMatchObject({ ImagesRemoved: output.report.totals.removed, RetentionErrors: 0 });

    // The next run finds the source gone and removes the copy: the cascade's second half.
    const next = await runToEnd(r, { time: START + 3_600_000 });
    expect(next.execution.name).toBe('retention-2026-11-30T11');
    expect(await registered(r, 'us-west-2')).not.toContain(cascadeCopy);
  });

  it('reports a unit whose calls are refused, and the other units complete', async () => {
    const policy = policyWith();
    const refused = { accessKeyId: 'AMIDRREFUSED', secretAccessKey: 'x' };
    const r = await runtime(policy, {
      unitClients: (fn) => (unit) =>
        unit.region === 'eu-west-1'
          ? createClients({ endpoint: rt!.twin.endpoint, credentials: refused, maxAttempts: 1 })
          : rt!.clientsFor(fn),
    });
    r.twin.iam.attach({
      accessKeyId: refused.accessKeyId,
      arn: 'arn:aws:sts::000000000000:assumed-role/x/y',
      statements: [],
    });
    seedAged(r);
    const { execution, output } = await runToEnd(r);

    expect(execution.status).toBe('SUCCEEDED');
    expect(output.report.failures).toEqual([
      expect.objectContaining({ unit: { accountId: r.twin.accountId, region: 'eu-west-1' }, step: 'plan' }),
    ]);
    expect(output.report.units.map((u) => u.region)).toEqual([SOURCE, 'us-west-2']);
    expect(output.report.units.every((u) => u.removed > 0)).toBe(true);
    expect(r.metrics.find((m) => m.name === 'RetentionErrors')?.value).toBe(1);
  });

  it('records a unit whose invocation fails as a result, not as the run failing', async () => {
    const r = await runtime(policyWith(), {
      wrapTask: (state, task) =>
        state === 'retention.RunUnit'
          ? async (input) => {
              if ((input as { unit: { region: string } }).unit.region === 'us-west-2')
                throw Object.assign(new Error('the function crashed'), { name: 'UnitCrashedError' });
              return task(input);
            }
          : task,
    });
    seedAged(r);
    const { execution, output } = await runToEnd(r);
    expect(execution.status).toBe('SUCCEEDED');
    expect(output.report.failures).toEqual([
      {
        unit: { accountId: r.twin.accountId, region: 'us-west-2' },
        step: 'unit',
        error: 'UnitCrashedError',
        cause: expect.stringContaining('crashed'),
      },
    ]);
    expect(output.report.units.map((u) => [u.region, u.status])).toEqual([
      [SOURCE, 'done'],
      ['eu-west-1', 'done'],
    ]);
  });

  it('records a unit whose execution fails as a whole (an error no Catch sees) as a failed unit, the others complete', async () => {
    const r = await runtime(policyWith(), {
      // A result over Step Functions' 256 KiB fails the unit's child execution with States.DataLimitExceeded.
      wrapTask: (state, task) =>
        state === 'retention.RunUnit'
          ? async (input) => {
              const out = await task(input);
              if ((input as { unit: { region: string } }).unit.region !== 'eu-west-1') return out;
              return { ...(out as object), padding: 'x'.repeat(300 * 1024) };
            }
          : task,
    });
    seedAged(r);
    const { execution, output } = await runToEnd(r);

    expect(execution.status).toBe('SUCCEEDED');
    expect(output.report.failures).toEqual([
      {
        unit: { accountId: r.twin.accountId, region: 'eu-west-1' },
        step: 'unit',
        error: 'States.DataLimitExceeded',
        cause: expect.stringContaining('RunUnit') as string,
      },
    ]);
    expect(output.report.units.map((u) => [u.region, u.status])).toEqual([
      [SOURCE, 'done'],
      ['us-west-2', 'done'],
    ]);
  });

  it('loops a unit whose time budget runs out until its work is done', async () => {
    const r = await runtime(policyWith(), {
      taskBudgetMs: 20_000,
      twinOptions: { s3: true, throttling: { enabled: true, scale: 1 } },
    });
    // 250 removals in one region: DeregisterImage's bucket of 100, then 5 a second, is 30 s of work.
    for (let i = 0; i < 250; i++)
      r.twin.seed.image(SOURCE, { name: `fleet${i % 4}-${i}`, creationDate: START - (120 + i / 100) * DAY });
    const { execution, output } = await runToEnd(r);
    expect(execution.status).toBe('SUCCEEDED');
    const unit = output.report.units.find((u) => u.region === SOURCE)!;
    expect(unit.iterations).toBeGreaterThan(1);
    expect(unit).toMatchObject({ status: 'done', removed: 246, pending: 0 });
    expect(execution.transitions.filter((t) => t.state === 'RunUnit').length).toBe(unit.iterations + 2);
  }, 60_000);

  it('runs one execution per schedule window: a second start in the same window does not run again', async () => {
    const r = await runtime(policyWith());
    seedAged(r);
    const first = await r.startScheduled('retention');
    const again = await r.startScheduled('retention', { time: START + 60_000 });
    await r.waitForIdle();
    const after = await r.startScheduled('retention', { time: START + 30 * 60_000 });
    await r.waitForIdle();
    expect(again.executionArn).toBe(first.executionArn);
    expect(after).toMatchObject({ executionArn: first.executionArn, alreadyStarted: true });
    expect(r.stepFunctions.executions(r.scheduledStateMachineArn('retention'))).toHaveLength(1);
  });
});
