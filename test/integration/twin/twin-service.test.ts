import {
  CopyImageCommand,
  CreateImageCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeVolumesCommand,
  RegisterImageCommand,
} from '@aws-sdk/client-ec2';
import { ListStateMachinesCommand, SFNClient } from '@aws-sdk/client-sfn';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createClients, ec2Client } from '../../../lib/aws/clients.ts';
import type { TwinEvent } from '../../../local/twin/events.ts';
import { jsonResponse } from '../../../local/twin/http.ts';
import { ec2, failure, manualTwin } from './helpers.ts';

const REGION = 'us-east-1';
let twin: Awaited<ReturnType<typeof manualTwin>>;

beforeAll(async () => {
  twin = await manualTwin({
    identities: { AKIDPIPELINE: 'arn:aws:sts::000000000000:assumed-role/packer/build-42' },
    createDurationMs: 60_000,
  });
});
afterEach(() => twin.faults.clear());
afterAll(async () => {
  await twin.stop();
});

describe('routing', () => {
  it('answers an EC2 action it does not implement with InvalidAction', async () => {
    const error = await failure(ec2(twin, REGION).send(new DescribeVolumesCommand({})));
    expect(error.name).toBe('InvalidAction');
    expect(error.$metadata?.httpStatusCode).toBe(400);
  });

  it('answers DryRun with DryRunOperation and changes nothing', async () => {
    const imageId = twin.seed.image(REGION, { name: 'dry' });
    const error = await failure(ec2(twin, REGION).send(new DeregisterImageCommand({ ImageId: imageId, DryRun: true })));
    expect(error.name).toBe('DryRunOperation');
    expect(twin.state.region(REGION).images.has(imageId)).toBe(true);
  });

  it('names the unknown service, and serves one once registered', async () => {
    const sfn = new SFNClient({ region: REGION, endpoint: twin.endpoint, maxAttempts: 1 });
    const unknown = await failure(sfn.send(new ListStateMachinesCommand({})));
    twin.register('states', (request) =>
      jsonResponse(
        {
          stateMachines: [
            {
              name: request.action,
              stateMachineArn: 'arn:aws:states:us-east-1:000000000000:stateMachine:x',
              type: 'STANDARD',
              creationDate: 0,
            },
          ],
        },
        'application/x-amz-json-1.0',
      ),
    );
    const served = await sfn.send(new ListStateMachinesCommand({}));

    expect(unknown.name).toBe('UnknownService');
    expect(unknown.message).toContain("'states'");
    expect(served.stateMachines?.[0]?.name).toBe('ListStateMachines');
  });
});

describe('throttling', () => {
  it('answers RequestLimitExceeded with HTTP 503 once the scaled bucket is empty, and refills with the clock', async () => {
    twin.faults.throttling(true, 0.05); // DescribeImages: burst 5, refill 1 per second
    const client = ec2(twin, 'us-west-1');
    for (let i = 0; i < 5; i++) await client.send(new DescribeImagesCommand({ Owners: ['self'] }));
    const throttled = await failure(client.send(new DescribeImagesCommand({ Owners: ['self'] })));
    const otherRegion = await ec2(twin, 'us-west-2').send(new DescribeImagesCommand({ Owners: ['self'] }));
    twin.clock.advance(1_000);
    const refilled = await client.send(new DescribeImagesCommand({ Owners: ['self'] }));

    expect(throttled.name).toBe('RequestLimitExceeded');
    expect(throttled.$metadata?.httpStatusCode).toBe(503);
    expect(otherRegion.Images).toBeDefined();
    expect(refilled.Images).toBeDefined();
  });

  it('keeps a bucket per action class: a drained CopyImage bucket does not throttle describes', async () => {
    twin.faults.throttling(true, 0.01); // CopyImage: burst 1
    const source = twin.seed.image(REGION, { name: 'throttle-source' });
    const client = ec2(twin, 'eu-west-3');
    await client.send(new CopyImageCommand({ SourceRegion: REGION, SourceImageId: source, Name: 'c-1' }));
    const second = await failure(
      client.send(new CopyImageCommand({ SourceRegion: REGION, SourceImageId: source, Name: 'c-2' })),
    );
    await twin.settle();
    const trail = twin.events.history.filter((e) => e.detail.eventName === 'CopyImage' && e.region === 'eu-west-3');

    expect(second.name).toBe('RequestLimitExceeded');
    await expect(client.send(new DescribeImagesCommand({ Owners: ['self'] }))).resolves.toBeDefined();
    expect(trail.map((e) => e.detail.errorCode)).toEqual([undefined, 'Client.RequestLimitExceeded']);
  });

  it('lets the adaptive-retry clients of lib/aws get every call through while time passes', async () => {
    twin.faults.throttling(true, 0.05);
    const client = ec2Client(createClients({ endpoint: twin.endpoint }), 'ca-central-1');
    const ticker = setInterval(() => twin.clock.advance(1_000), 20);
    try {
      const results = await Promise.all(
        Array.from({ length: 8 }, () => client.send(new DescribeImagesCommand({ Owners: ['self'] }))),
      );
      expect(results).toHaveLength(8);
      expect(results.some((r) => (r.$metadata.attempts ?? 1) > 1)).toBe(true);
    } finally {
      clearInterval(ticker);
    }
  });
});

describe('events', () => {
  it('records CreateImage with the caller, and announces the image available after the create duration', async () => {
    const seen: TwinEvent[] = [];
    // Only this region's: images earlier tests left pending elsewhere may become available while the clock moves.
    const off = twin.events.subscribe((e) => (e.region === 'eu-central-1' ? seen.push(e) : undefined));
    const instanceId = twin.seed.instance('eu-central-1', { imageId: 'ami-0123456789abcdef0' });
    const at = new Date(twin.clock.now()).toISOString().replace('.000Z', 'Z');
    const client = ec2(twin, 'eu-central-1', 'AKIDPIPELINE');
    const { ImageId } = await client.send(
      new CreateImageCommand({
        InstanceId: instanceId,
        Name: 'packer-1',
        TagSpecifications: [{ ResourceType: 'image', Tags: [{ Key: 'app', Value: 'x' }] }],
      }),
    );
    await twin.settle();
    const beforeDone = seen.length;
    twin.clock.advance(60_000);
    await twin.settle();
    off();

    expect(beforeDone).toBe(1);
    expect(seen[0]).toMatchObject({
      'detail-type': 'AWS API Call via CloudTrail',
      region: 'eu-central-1',
      time: at,
      detail: {
        eventName: 'CreateImage',
        eventTime: at,
        userIdentity: {
          type: 'AssumedRole',
          arn: 'arn:aws:sts::000000000000:assumed-role/packer/build-42',
          principalId: expect.stringMatching(/^AROA\w+:build-42$/),
          sessionContext: {
            sessionIssuer: { type: 'Role', arn: 'arn:aws:iam::000000000000:role/packer', userName: 'packer' },
          },
        },
        requestParameters: {
          instanceId,
          name: 'packer-1',
          tagSpecificationSet: { items: [{ resourceType: 'image', tags: [{ key: 'app', value: 'x' }] }] },
        },
        responseElements: { imageId: ImageId },
        requestID: expect.any(String),
        eventID: expect.any(String),
      },
    });
    expect(seen[1]).toMatchObject({
      'detail-type': 'EC2 AMI State Change',
      source: 'aws.ec2',
      region: 'eu-central-1',
      resources: [`arn:aws:ec2:eu-central-1::image/${ImageId}`],
      detail: { ImageId, State: 'available', ErrorMessage: '', RequestId: expect.any(String) },
    });
  });

  it("recognises ami-dr's own role by its access key", async () => {
    const client = ec2(twin, 'us-east-2', 'AMIDRLAMBDA');
    await client.send(new RegisterImageCommand({ Name: 'own-call', ImageLocation: 'b/own/image.manifest.xml' }));
    await twin.settle();
    const call = twin.events.history.find((e) => e.detail.eventName === 'RegisterImage' && e.region === 'us-east-2');
    expect((call?.detail.userIdentity as { arn: string }).arn).toBe(
      'arn:aws:sts::000000000000:assumed-role/ami-dr/AMIDRLAMBDA',
    );
  });

  it('records failed calls with their error code, RegisterImage with an immediate available, and deregistration', async () => {
    const region = 'ap-northeast-2';
    const seen: TwinEvent[] = [];
    const off = twin.events.subscribe((e) => seen.push(e));
    const client = ec2(twin, region);
    await failure(client.send(new RegisterImageCommand({ Name: 'no-root' })));
    const { ImageId } = await client.send(
      new RegisterImageCommand({ Name: 'bundle', ImageLocation: 'b/app/image.manifest.xml' }),
    );
    await client.send(new DeregisterImageCommand({ ImageId }));
    await twin.settle();
    off();

    expect(seen.map((e) => [e['detail-type'], e.detail.eventName ?? e.detail.State, e.region])).toEqual([
      ['AWS API Call via CloudTrail', 'RegisterImage', region],
      ['EC2 AMI State Change', 'available', region],
      ['AWS API Call via CloudTrail', 'RegisterImage', region],
      ['EC2 AMI State Change', 'deregistered', region],
    ]);
    expect(seen[0]?.detail).toMatchObject({ errorCode: 'InvalidParameterCombination', responseElements: null });
    expect(seen[2]?.detail.responseElements).toMatchObject({ imageId: ImageId });
  });

  it('delivers asynchronously and in order, never inside the call that published', async () => {
    const seen: string[] = [];
    const off = twin.events.subscribe((e) => {
      seen.push(String(e.detail.n));
    });
    for (const n of [1, 2, 3]) {
      twin.events.publish({
        'detail-type': 'test',
        source: 'test',
        account: twin.accountId,
        time: '',
        region: REGION,
        resources: [],
        detail: { n },
      });
    }
    const synchronously = [...seen];
    await twin.events.flush();
    off();

    expect(synchronously).toEqual([]);
    expect(seen).toEqual(['1', '2', '3']);
  });
});
