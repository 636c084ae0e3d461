import { DescribeImagesCommand } from '@aws-sdk/client-ec2';
import type { Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ec2Client, sfnClient } from '../../../lib/aws/clients.ts';
import { startExecution } from '../../../lib/aws/sfn.ts';
import { METRIC } from '../../../lib/observability.ts';
import type { RetentionRunReport, UnitState } from '../../../lib/workflows/scheduled-retention.ts';
import { startLocalRuntime, type LocalRuntime } from '../../../local/runtime/runtime.ts';
import { SystemClock } from '../../../local/twin/clock.ts';
import { captureEmf, lambdaContext, tasksOnHandler } from '../lambda.ts';
import { DAY, REGION, testPolicy } from './helpers.ts';

// Powertools keeps metrics to itself in dev mode (the test setup's POWERTOOLS_DEV); this test reads the EMF output.
vi.hoisted(() => {
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
});

/**
 * functions/retention as deployed: imported as Lambda would (policy from the environment, calls to the twin), and
 * invoked by the retention state machine with its tasks' events: plan, each unit (again while it returns `more`),
 * aggregate. The handler's budget is real time (the context's remaining time), so the twin runs on real time too.
 */
describe('functions/retention, as its state machine invokes it', () => {
  const policy = testPolicy();
  let rt: LocalRuntime;
  let handler: typeof import('../../../functions/retention.ts').handler;
  /** The remaining time of a REGION unit's first invocation (its state has no progress yet); else 900 s. */
  let firstBudgetMs: number | undefined;
  const tasks = tasksOnHandler(
    'retention',
    () => handler,
    (state, event) => {
      const unit = event as UnitState;
      const first = state === 'retention.RunUnit' && unit.unit.region === REGION && !unit.progress;
      return lambdaContext('ami-dr-dev-retention', (first && firstBudgetMs) || 900_000);
    },
  );

  beforeAll(async () => {
    rt = await startLocalRuntime({ policy, clock: new SystemClock(), wrapTask: tasks.wrapTask });
    vi.stubEnv('AMI_DR_POLICY', JSON.stringify(policy));
    vi.stubEnv('AWS_ENDPOINT_URL', rt.twin.endpoint);
    // The runs bucket serverless.yml hands the function (RunsBucket), on the twin's S3.
    vi.stubEnv('RUNS_BUCKET', rt.runsBucket);
    vi.stubEnv('AWS_ENDPOINT_URL_S3', rt.twin.s3Endpoint!);
    vi.stubEnv('AWS_REGION', REGION);
    ({ handler } = await import('../../../functions/retention.ts'));
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    await rt?.stop();
  });

  /** A run as `aws stepfunctions start-execution` starts one (README, "Running a job now"), to its end. */
  async function run(name: string, dryRun = false) {
    const now = Date.now();
    const window = { name, start: new Date(now).toISOString(), end: new Date(now + 3_600_000).toISOString() };
    const arn = rt.scheduledStateMachineArn('retention');
    const sfn = sfnClient(rt.clientsFor('startScheduled'), REGION);
    const started = await startExecution(sfn, arn, name, { window, dryRun });
    const execution = rt.stepFunctions.execution(started.executionArn)!;
    await execution.done;
    return { execution, report: (JSON.parse(execution.output ?? 'null') as { report: RetentionRunReport }).report };
  }

  /** The family's images (by name) still registered in REGION, and the snapshots each has. */
  async function family(prefix: string): Promise<Map<string, string[]>> {
    const out = await ec2Client(rt.clients, REGION).send(
      new DescribeImagesCommand({ Owners: ['self'], IncludeDeprecated: true, MaxResults: 1000 }),
    );
    return new Map(
      (out.Images ?? [])
        .filter((i) => i.Name?.startsWith(prefix))
        .map((i) => [i.Name!, (i.BlockDeviceMappings ?? []).map((b) => b.Ebs?.SnapshotId ?? '')]),
    );
  }
  const snapshots = (): Set<string> => new Set(rt.twin.state.region(REGION).snapshots.keys());

  it('removes the aged image with its snapshots, keeps the one in use, and publishes the run metrics', async () => {
    const now = Date.now();
    rt.twin.seed.image(REGION, { name: 'web-1.0', creationDate: now - 200 * DAY });
    const inUse = rt.twin.seed.image(REGION, { name: 'web-1.1', creationDate: now - 150 * DAY });
    rt.twin.seed.instance(REGION, { imageId: inUse });
    rt.twin.seed.image(REGION, { name: 'web-1.2', creationDate: now - DAY });
    const aged = (await family('web-')).get('web-1.0')!;
    tasks.invocations.length = 0;
    const emf = captureEmf();

    const { execution, report } = await run('retention-web');

    const published = emf.stop();
    expect(execution.status).toBe('SUCCEEDED');
    expect([...(await family('web-')).keys()].sort()).toEqual(['web-1.1', 'web-1.2']);
    expect(aged.length).toBeGreaterThan(0);
    for (const snapshotId of aged) expect(snapshots()).not.toContain(snapshotId);
    expect(report.units.map((u) => [u.region, u.status])).toEqual([
      [REGION, 'done'],
      ['us-west-2', 'done'],
    ]);
    expect(report.totals).toMatchObject({ removed: 1, errors: 0 });
    expect(tasks.invocations.map((i) => i.state)).toEqual([
      'retention.Plan',
      'retention.RunUnit',
      'retention.RunUnit',
      'retention.Aggregate',
    ]);
    // One set of metrics, published by the aggregate step.
    expect(published).toEqual([
      expect.objectContaining({
        [METRIC.imagesRemoved]: 1,
        [METRIC.gibFreed]: report.totals.gibFreed,
        [METRIC.retentionErrors]: 0,
        service: 'ami-dr',
      }),
    ]);
    expect(report.totals.gibFreed).toBeGreaterThan(0);
  });

  it('changes nothing on a dry-run; the same run applied then removes what it listed', async () => {
    const now = Date.now();
    rt.twin.seed.image(REGION, { name: 'api-1.0', creationDate: now - 200 * DAY });
    rt.twin.seed.image(REGION, { name: 'api-1.1', creationDate: now - DAY });
    const before = await family('api-');
    const snapshotsBefore = snapshots();
    const emf = captureEmf();

    const dry = await run('retention-api-dry-run', true);

    const published = emf.stop();
    expect(dry.execution.status).toBe('SUCCEEDED');
    expect(dry.report).toMatchObject({ dryRun: true, totals: { removed: 0, errors: 0 } });
    // What it would free: the aged image's snapshot.
    expect(dry.report.totals.gibFreed).toBeGreaterThan(0);
    expect(await family('api-')).toEqual(before);
    expect(snapshots()).toEqual(snapshotsBefore);
    expect(published).toEqual([expect.objectContaining({ [METRIC.imagesRemoved]: 0, [METRIC.gibFreed]: 0 })]);

    const applied = await run('retention-api');
    expect(applied.report.totals.removed).toBe(1);
    expect([...(await family('api-')).keys()]).toEqual(['api-1.1']);
  });

  it('returns `more` when the time budget runs out with work left, and is invoked again until done', async () => {
    const now = Date.now();
    // 150 removals: DeregisterImage's bucket of 100, then 5 a second (10 s); a 6 s budget cannot fit them, and
    // leaves a loaded machine time to inventory and plan before the first removal.
    for (let i = 0; i < 151; i++)
      rt.twin.seed.image(REGION, { name: `fleet-1.${i}`, creationDate: now - (200 - i / 100) * DAY });
    firstBudgetMs = 36_000;
    tasks.invocations.length = 0;

    const { execution, report } = await run('retention-fleet');
    firstBudgetMs = undefined;

    expect(execution.status).toBe('SUCCEEDED');
    const runs = tasks.invocations.filter(
      (i) => i.state === 'retention.RunUnit' && (i.event as UnitState).unit.region === REGION,
    );
    const first = runs[0]!.output as UnitState;
    expect(first).toMatchObject({ more: true, status: 'continuing' });
    expect(first.progress!.removed).toBeGreaterThan(0);
    expect(first.progress!.pending).toBeGreaterThan(0);
    expect(runs.length).toBeGreaterThan(1);
    expect(report.units.find((u) => u.region === REGION)).toMatchObject({
      status: 'done',
      removed: 150,
      pending: 0,
      iterations: runs.length,
    });
    expect([...(await family('fleet-')).keys()]).toEqual(['fleet-1.150']);
  }, 60_000);

  it('refuses an event that is not one of its tasks, naming what is wrong', async () => {
    const context: Context = lambdaContext('ami-dr-dev-retention');
    // What invoking it by hand used to take: a scheduled event, or nothing.
    await expect(handler({ 'detail-type': 'Scheduled Event', source: 'aws.events' }, context)).rejects.toThrow(
      /^retention task input: step: .*'plan' \| 'unit' \| 'aggregate'/,
    );
    await expect(handler({}, context)).rejects.toMatchObject({ name: 'StepInputError' });
    await expect(
      handler({ step: 'plan', window: { name: 'w', start: 'a', end: 'b' }, dryRun: 'yes' }, context),
    ).rejects.toThrow(/dryRun/);
    await expect(
      handler({ step: 'unit', run: { name: 'w', windowEnd: 'b', now: 'a', dryRun: false } }, context),
    ).rejects.toThrow(/unit: /);
  });
});
