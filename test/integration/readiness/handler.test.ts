import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { METRIC } from '../../../lib/observability.ts';
import { harness, SOURCE, testPolicy, type Harness } from '../replication/helpers.ts';

// Powertools keeps metrics to itself in dev mode (the test setup's POWERTOOLS_DEV); this test reads the EMF output.
vi.hoisted(() => {
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
});

/** The scheduled function, imported as Lambda would (policy and state machine from the environment), on the twin. */
describe('functions/readiness', () => {
  let h: Harness;
  const policy = testPolicy();

  beforeAll(async () => {
    h = await harness({ policy });
    process.env.AMI_DR_POLICY = JSON.stringify(policy);
    process.env.STATE_MACHINE_ARN = h.rt.stateMachineArn(SOURCE);
    process.env.AWS_ENDPOINT_URL = h.rt.twin.endpoint;
    process.env.AWS_REGION = SOURCE;
  });
  afterAll(async () => {
    delete process.env.AWS_ENDPOINT_URL;
    delete process.env.STATE_MACHINE_ARN;
    await h?.rt.stop();
  });

  it('re-drives an image nobody replicated, publishes the readiness metrics, and is ready on the next run', async () => {
    const imageId = h.rt.twin.seed.image(SOURCE, { name: 'svc-1.0', tags: { Team: 'core' } });
    const emitted: string[] = [];
    const spies = [
      vi.spyOn(console, 'log').mockImplementation((line: unknown) => void emitted.push(String(line))),
      vi.spyOn(console, 'info').mockImplementation((line: unknown) => void emitted.push(String(line))),
      vi.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => emitted.push(String(chunk)) > 0),
    ];
    const { handler } = await import('../../../functions/readiness.ts');
    const context = {
      functionName: 'ami-dr-dev-readiness',
      invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:ami-dr-dev-readiness',
      awsRequestId: '1',
      getRemainingTimeInMillis: () => 300_000,
    };

    const first = (await handler(
      { 'detail-type': 'Scheduled Event', source: 'aws.events', time: new Date().toISOString() },
      context as never,
    )) as {
      summary: { imagesNotReady: number };
      redriven: { sourceImageId: string; result: string }[];
    };
    for (const spy of spies) spy.mockRestore();
    expect(first.summary.imagesNotReady).toBe(1);
    expect(first.redriven).toEqual([expect.objectContaining({ sourceImageId: imageId, result: 'started' })]);
    const emf = emitted
      .flatMap((l) => l.split('\n'))
      .filter((l) => l.trim().startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((doc) => '_aws' in doc);
    expect(emf).toMatchObject({
      [METRIC.readyRatio]: 0,
      [METRIC.imagesNotReady]: 1,
      [METRIC.redriven]: 1,
      service: 'ami-dr',
    });
    expect(emf).toHaveProperty(METRIC.oldestUnprotectedAgeSeconds);
    expect(emf).toHaveProperty(METRIC.replicationLagSeconds);

    await h.rt.waitForIdle();
    const second = (await handler({}, context as never)) as {
      summary: { imagesNotReady: number; readyRatio: number };
      redriven: unknown[];
    };
    expect(second.summary).toMatchObject({ imagesNotReady: 0, readyRatio: 1 });
    expect(second.redriven).toEqual([]);
  });
});
