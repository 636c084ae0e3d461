import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { METRIC } from '../../../lib/observability.ts';
import type { ReadinessRunReport } from '../../../lib/workflows/scheduled-readiness.ts';
import { captureEmf, lambdaContext, tasksOnHandler } from '../lambda.ts';
import { harness, SOURCE, START, testPolicy, type Harness } from '../replication/helpers.ts';

// Powertools keeps metrics to itself in dev mode (the test setup's POWERTOOLS_DEV); this test reads the EMF output.
vi.hoisted(() => {
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
});

/**
 * functions/readiness as deployed: imported as Lambda would (policy and replicate state machine from the
 * environment, calls to the twin), and invoked by the readiness state machine with its tasks' events: plan, one
 * unit per source region, aggregate.
 */
describe('functions/readiness, as its state machine invokes it', () => {
  let h: Harness;
  const policy = testPolicy();
  let handler: typeof import('../../../functions/readiness.ts').handler;
  const tasks = tasksOnHandler('readiness', () => handler);

  beforeAll(async () => {
    h = await harness({ policy, wrapTask: tasks.wrapTask });
    vi.stubEnv('AMI_DR_POLICY', JSON.stringify(policy));
    vi.stubEnv('STATE_MACHINE_ARN', h.rt.stateMachineArn(SOURCE));
    vi.stubEnv('AWS_ENDPOINT_URL', h.rt.twin.endpoint);
    // The runs bucket serverless.yml hands the function (RunsBucket), on the twin's S3.
    vi.stubEnv('RUNS_BUCKET', h.rt.runsBucket);
    vi.stubEnv('AWS_ENDPOINT_URL_S3', h.rt.twin.s3Endpoint!);
    vi.stubEnv('AWS_REGION', SOURCE);
    ({ handler } = await import('../../../functions/readiness.ts'));
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    await h?.rt.stop();
  });

  /** The schedule's run of the window `time` falls in, to its end (the replications it re-drives run on). */
  async function run(time: number) {
    const started = await h.rt.startScheduled('readiness', { time });
    const execution = h.rt.stepFunctions.execution(started.executionArn)!;
    await execution.done;
    return { execution, report: (JSON.parse(execution.output ?? 'null') as { report: ReadinessRunReport }).report };
  }

  it('re-drives an image nobody replicated, publishes the readiness metrics, and is ready on the next run', async () => {
    const imageId = h.rt.twin.seed.image(SOURCE, { name: 'svc-1.0', tags: { Team: 'core' } });
    const emf = captureEmf();

    const first = await run(START);

    const published = emf.stop();
    expect(first.execution.status).toBe('SUCCEEDED');
    expect(tasks.invocations.map((i) => i.state)).toEqual([
      'readiness.Plan',
      'readiness.RunUnit',
      'readiness.Aggregate',
    ]);
    expect(first.report.summary.imagesNotReady).toBe(1);
    expect(first.report.units).toEqual([expect.objectContaining({ region: SOURCE, redriven: 1 })]);
    // The re-drive: the source region's replicate state machine started for the image.
    const replications = h.rt.executions().filter((e) => e.stateMachineArn === h.rt.stateMachineArn(SOURCE));
    expect(replications.map((e) => JSON.parse(e.input) as unknown)).toEqual([
      expect.objectContaining({ source: expect.objectContaining({ imageId }) }),
    ]);
    // One set of metrics, published by the aggregate step.
    expect(published).toEqual([
      expect.objectContaining({
        [METRIC.readyRatio]: 0,
        [METRIC.imagesNotReady]: 1,
        [METRIC.redriven]: 1,
        service: 'ami-dr',
      }),
    ]);
    expect(published[0]).toHaveProperty(METRIC.oldestUnprotectedAgeSeconds);
    expect(published[0]).toHaveProperty(METRIC.replicationLagSeconds);

    await h.rt.waitForIdle();
    const second = await run(START + 30 * 60_000);
    expect(second.report.summary).toMatchObject({ imagesNotReady: 0, readyRatio: 1 });
    expect(second.report.units).toEqual([expect.objectContaining({ redriven: 0 })]);
  });

  it('refuses an event that is not one of its tasks, naming what is wrong', async () => {
    const context = lambdaContext('ami-dr-dev-readiness');
    // What invoking it by hand used to take: a scheduled event, or nothing.
    await expect(handler({ 'detail-type': 'Scheduled Event', source: 'aws.events' }, context)).rejects.toThrow(
      /^readiness task input: step: .*'plan' \| 'unit' \| 'aggregate'/,
    );
    await expect(handler({}, context)).rejects.toMatchObject({ name: 'StepInputError' });
    await expect(handler({ step: 'aggregate', run: { name: 'w', windowEnd: 'b' } }, context)).rejects.toThrow(
      /results: /,
    );
  });
});
