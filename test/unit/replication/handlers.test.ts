import {
  CopyImageCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImageAttributeCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  EnableImageDeprecationCommand,
  EnableImageDeregistrationProtectionCommand,
  ModifyImageAttributeCommand,
  ModifySnapshotAttributeCommand,
  type DescribeImagesCommandInput,
  type Image,
} from '@aws-sdk/client-ec2';
import { DeleteItemCommand, DynamoDBClient, PutItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import { SendTaskSuccessCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { metrics } from '../../../lib/observability.ts';
import { createClients } from '../../../lib/aws/clients.ts';
import { startCopy } from '../../../lib/workflows/replication.ts';
import { SLOT_WAIT } from '../../../lib/domain/replication-steps.ts';
import { HANDOFF_PAGE } from '../../../lib/workflows/copy-queue.ts';
import { ACCOUNT, policy, policyDocument, sample } from './fixtures.ts';

/** Each replication Lambda handler, as Lambda would call it, with the SDK mocked and the events/ samples as input. */

const SM_ARN = `arn:aws:states:us-east-1:${ACCOUNT}:stateMachine:ami-dr-dev-replicate`;
const TOPIC = `arn:aws:sns:us-east-1:${ACCOUNT}:ami-dr-alerts`;
const SOURCE_ID = 'ami-0a1b2c3d4e5f60718';
const COPY_ID = 'ami-0ccccccccccccccc1';
const KEY_ARN = `arn:aws:kms:us-west-2:${ACCOUNT}:key/11111111-2222-3333-4444-555555555555`;

const ec2 = mockClient(EC2Client);
const sfn = mockClient(SFNClient);
const sns = mockClient(SNSClient);
const ddb = mockClient(DynamoDBClient);
const TABLE = 'ami-dr-dev-copy-waits';
const QUEUE_TABLE = 'ami-dr-dev-copy-queue';

type Handler = (event: unknown, context: Context) => Promise<unknown>;
const handlers: Record<string, Handler> = {};
const context = (name: string): Context =>
  ({
    functionName: `ami-dr-dev-${name}`,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:${ACCOUNT}:function:ami-dr-dev-${name}`,
    memoryLimitInMB: '512',
    awsRequestId: 'req-1',
    logGroupName: '/aws/lambda/x',
    logStreamName: 's',
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => 30_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  }) as Context;
const invoke = (name: string, event: unknown) => (handlers[name] as Handler)(event, context(name));

beforeAll(async () => {
  vi.stubEnv(
    'AMI_DR_POLICY',
    JSON.stringify({
      ...policyDocument,
      notifications: { snsTopicArn: TOPIC },
      replication: { ...policyDocument.replication, shareSnapshots: true, deregistrationProtection: true },
    }),
  );
  vi.stubEnv('STATE_MACHINE_ARN', SM_ARN);
  vi.stubEnv('COPY_WAITS_TABLE', TABLE);
  vi.stubEnv('COPY_QUEUE_TABLE', QUEUE_TABLE);
  vi.stubEnv('AMI_DR_ROLE_ARN_PREFIX', `arn:aws:sts::${ACCOUNT}:assumed-role/ami-dr-dev-us-east-1-`);
  for (const name of [
    'on-image-event',
    'on-copy-state',
    'await-copy',
    'await-slot',
    'check-source',
    'start-copy',
    'check-copy',
    'finalize-copy',
    'cleanup-copy',
    'summarize',
  ]) {
    handlers[name] = ((await import(`../../../functions/${name}.ts`)) as { handler: Handler }).handler;
  }
});
afterAll(() => {
  vi.useRealTimers();
  vi.unstubAllEnvs();
});

const awsError = (name: string) => Object.assign(new Error(name), { name, $metadata: {} });

/** DescribeImages by id, by provenance tag or by name, from a small in-memory account. */
function describeImages(all: Image[], copies: Image[] = []) {
  ec2.on(DescribeImagesCommand).callsFake((input: DescribeImagesCommandInput) => {
    if (input.ImageIds) {
      const found = all.filter((i) => input.ImageIds?.includes(i.ImageId ?? ''));
      if (found.length === 0) throw awsError('InvalidAMIID.NotFound');
      return { Images: found };
    }
    const filter = (name: string) => input.Filters?.find((f) => f.Name === name)?.Values?.[0];
    if (filter('tag:ami-dr:source-image-id')) return { Images: copies };
    const name = filter('name');
    if (name) return { Images: all.filter((i) => i.Name === name) };
    return { Images: [] };
  });
}

const sourceImage = (overrides: Partial<Image> = {}): Image => ({
  ImageId: SOURCE_ID,
  OwnerId: ACCOUNT,
  Name: 'web-2026.03.02',
  State: 'available',
  CreationDate: '2026-03-02T10:15:00.000Z',
  RootDeviceType: 'ebs',
  BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { SnapshotId: 'snap-0source00000000001', Encrypted: false } }],
  Tags: [
    { Key: 'Team', Value: 'web' },
    { Key: 'CostCenter', Value: 'cc-1' },
  ],
  DeprecationTime: '2099-01-01T00:00:00.000Z',
  ...overrides,
});

const copyImage = (overrides: Partial<Image> = {}): Image => ({
  ImageId: COPY_ID,
  OwnerId: ACCOUNT,
  Name: 'web-2026.03.02',
  State: 'pending',
  CreationDate: '2026-03-02T10:20:00.000Z',
  RootDeviceType: 'ebs',
  BlockDeviceMappings: [
    { DeviceName: '/dev/xvda', Ebs: { SnapshotId: 'snap-0copy0000000000001', Encrypted: true, KmsKeyId: KEY_ARN } },
  ],
  Tags: [
    { Key: 'ami-dr:role', Value: 'replica' },
    { Key: 'ami-dr:source-image-id', Value: SOURCE_ID },
    { Key: 'ami-dr:source-region', Value: 'us-east-1' },
  ],
  ...overrides,
});

const summary = {
  imageId: SOURCE_ID,
  region: 'us-east-1',
  name: 'web-2026.03.02',
  creationDate: '2026-03-02T10:15:00.000Z',
  rootDeviceType: 'ebs',
  encrypted: false,
  public: false,
};
const target = { region: 'us-west-2', kmsKeyId: 'alias/ami-dr' };
const copyStatus = (overrides: Record<string, unknown> = {}) => ({
  imageId: COPY_ID,
  region: 'us-west-2',
  adopted: false,
  encrypted: true,
  kmsKeyId: 'alias/ami-dr',
  startedAt: '2026-03-02T10:20:00.000Z',
  deadline: '2099-03-03T10:20:00.000Z',
  checks: 1,
  waitSeconds: 60,
  nextCheckAt: '2026-03-02T10:21:30.000Z',
  state: 'pending',
  pastDeadline: false,
  ...overrides,
});

beforeEach(() => {
  // The handlers read real time; pin it so deadlines and lags do not depend on when the tests run.
  vi.useFakeTimers({ now: new Date('2026-03-02T10:30:00.000Z'), toFake: ['Date'] });
  ec2.reset();
  sfn.reset();
  sns.reset();
  // Nobody waits for a copy slot unless a test says so.
  ddb.reset();
  ddb.on(QueryCommand).resolves({ Items: [] });
});

describe('on-image-event handler', () => {
  it('starts one execution named after region, image and policy version for a CreateImage record', async () => {
    describeImages([sourceImage({ State: 'pending' })]);
    sfn
      .on(StartExecutionCommand)
      .resolves({ executionArn: `${SM_ARN.replace('stateMachine', 'execution')}:x`, startDate: new Date() });
    const result = await invoke('on-image-event', sample('cloudtrail-create-image.json'));
    expect(result).toMatchObject({ action: 'started', imageId: SOURCE_ID });
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 1);
    const call = sfn.commandCalls(StartExecutionCommand)[0]!.args[0].input;
    expect(call.stateMachineArn).toBe(SM_ARN);
    expect(call.name).toMatch(new RegExp(`^us-east-1_${SOURCE_ID}_[0-9a-f]{8}$`));
    expect(JSON.parse(call.input ?? '{}')).toEqual({
      source: { region: 'us-east-1', imageId: SOURCE_ID },
      policyVersion: expect.stringMatching(/^[0-9a-f]{8}$/) as unknown as string,
      targets: [
        { region: 'us-west-2', kmsKeyId: 'alias/ami-dr' },
        { region: 'eu-west-1', kmsKeyId: 'alias/ami-dr' },
      ],
      maxConcurrency: 5,
    });
  });

  it('gives the State Change event for the same image the same name and input, and takes ExecutionAlreadyExists as success', async () => {
    describeImages([sourceImage()]);
    sfn
      .on(StartExecutionCommand)
      .resolvesOnce({ executionArn: 'arn:x', startDate: new Date() })
      .rejects(awsError('ExecutionAlreadyExists'));
    await invoke('on-image-event', sample('cloudtrail-create-image.json'));
    const again = await invoke('on-image-event', sample('ami-state-change-available.json'));
    expect(again).toMatchObject({ action: 'already-started' });
    const [first, second] = sfn.commandCalls(StartExecutionCommand).map((c) => c.args[0].input);
    expect(second).toEqual(first);
  });

  it.each([['cloudtrail-copy-image.json'], ['cloudtrail-register-image.json']])('acts on %s', async (file) => {
    const event = sample(file);
    const imageId = (event.detail as { responseElements: { imageId: string } }).responseElements.imageId;
    describeImages([sourceImage({ ImageId: imageId })]);
    sfn.on(StartExecutionCommand).resolves({ executionArn: 'arn:x', startDate: new Date() });
    expect(await invoke('on-image-event', event)).toMatchObject({ action: 'started', imageId });
  });

  it.each([
    ['cloudtrail-create-image-failed.json', 'call-failed'],
    ['cloudtrail-create-image-other-account.json', 'another-account'],
    ['cloudtrail-copy-image-own-role.json', 'own-role'],
  ])('drops %s without calling AWS', async (file, reason) => {
    expect(await invoke('on-image-event', sample(file))).toMatchObject({ action: 'skipped', reason });
    expect(ec2).not.toHaveReceivedAnyCommand();
    expect(sfn).not.toHaveReceivedAnyCommand();
  });

  it('drops a replica after reading its tags', async () => {
    describeImages([copyImage({ ImageId: 'ami-0e5f60718293a4b5c', State: 'available' })]);
    expect(await invoke('on-image-event', sample('ami-state-change-replica.json'))).toMatchObject({
      action: 'skipped',
      reason: 'replica',
    });
    expect(sfn).not.toHaveReceivedAnyCommand();
  });

  it('drops a Marketplace image shared from another account, and an image the selector excludes', async () => {
    describeImages([
      sourceImage({
        OwnerId: '679593333241',
        ProductCodes: [{ ProductCodeId: 'prod-x', ProductCodeType: 'marketplace' }],
      }),
    ]);
    expect(await invoke('on-image-event', sample('cloudtrail-create-image.json'))).toMatchObject({
      reason: 'marketplace',
    });
    ec2.reset();
    describeImages([sourceImage({ Tags: [{ Key: 'ami-dr:skip', Value: 'true' }] })]);
    expect(await invoke('on-image-event', sample('cloudtrail-create-image.json'))).toMatchObject({
      reason: 'selector',
    });
    expect(sfn).not.toHaveReceivedAnyCommand();
  });

  it('rejects a malformed event with MalformedEventError (so Lambda retries a bounded number of times, then dead-letters it)', async () => {
    await expect(invoke('on-image-event', sample('malformed-create-image.json'))).rejects.toMatchObject({
      name: 'MalformedEventError',
    });
    expect(sfn).not.toHaveReceivedAnyCommand();
  });

  it('lets a StartExecution failure through, so the invocation is retried', async () => {
    describeImages([sourceImage()]);
    sfn.on(StartExecutionCommand).rejects(awsError('ThrottlingException'));
    await expect(invoke('on-image-event', sample('cloudtrail-create-image.json'))).rejects.toMatchObject({
      name: 'ThrottlingException',
    });
  });
});

describe('check-source handler', () => {
  const input = {
    source: { region: 'us-east-1', imageId: SOURCE_ID },
    targets: [target],
    policyVersion: 'abcd1234',
    maxConcurrency: 5,
  };
  it('says wait while the source is pending, with a growing interval', async () => {
    describeImages([sourceImage({ State: 'pending' })]);
    const first = (await invoke('check-source', input)) as { verdict: string; waitSeconds: number; checks: number };
    expect(first).toMatchObject({ verdict: 'wait', waitSeconds: 30, checks: 1 });
    const second = await invoke('check-source', { ...input, check: first });
    expect(second).toMatchObject({ verdict: 'wait', waitSeconds: 60, checks: 2 });
  });
  it('says ready with what later steps need once available', async () => {
    describeImages([sourceImage()]);
    expect(await invoke('check-source', input)).toMatchObject({ verdict: 'ready', image: { ...summary } });
  });
  it('says stop, with the reason, for a source that is gone or failed', async () => {
    describeImages([]);
    expect(await invoke('check-source', input)).toMatchObject({
      verdict: 'stop',
      reason: expect.stringMatching(/no longer exists/) as unknown as string,
    });
    ec2.reset();
    describeImages([sourceImage({ State: 'failed', StateReason: { Code: 'x', Message: 'snapshot failed' } })]);
    expect(await invoke('check-source', input)).toMatchObject({
      verdict: 'stop',
      reason: expect.stringMatching(/failed: snapshot failed/) as unknown as string,
    });
  });
  it('rejects input that is not a replication request', async () => {
    await expect(invoke('check-source', { source: { imageId: 'nope' } })).rejects.toMatchObject({
      name: 'StepInputError',
    });
  });
});

describe('start-copy handler', () => {
  it('copies with Encrypted, the region key, a deterministic ClientToken and provenance tags on image and snapshots', async () => {
    describeImages([sourceImage(), copyImage()]);
    ec2.on(CopyImageCommand).resolves({ ImageId: COPY_ID });
    const out = await invoke('start-copy', { source: summary, target });
    expect(out).toMatchObject({
      imageId: COPY_ID,
      adopted: false,
      encrypted: true,
      kmsKeyId: 'alias/ami-dr',
      state: 'pending',
      // The first fallback check, should the copy's event be lost.
      waitSeconds: 7200,
      checks: 0,
    });
    const copy = ec2.commandCalls(CopyImageCommand)[0]!.args[0].input;
    expect(copy).toMatchObject({
      SourceRegion: 'us-east-1',
      SourceImageId: SOURCE_ID,
      Encrypted: true,
      KmsKeyId: 'alias/ami-dr',
      Name: 'web-2026.03.02',
    });
    expect(copy.ClientToken).toMatch(/^ami-dr-[0-9a-f]{48}$/);
    expect(copy.TagSpecifications?.map((s) => s.ResourceType)).toEqual(['image', 'snapshot']);
    const tags = Object.fromEntries(copy.TagSpecifications?.[0]?.Tags?.map((t) => [t.Key, t.Value]) ?? []);
    expect(tags).toMatchObject({
      Team: 'web',
      'dr-copy': 'true',
      'ami-dr:role': 'replica',
      'ami-dr:source-image-id': SOURCE_ID,
      'ami-dr:source-region': 'us-east-1',
    });
    expect(tags).not.toHaveProperty('CostCenter');
    // A retry sends the very same token.
    await invoke('start-copy', { source: summary, target });
    const [a, b] = ec2.commandCalls(CopyImageCommand).map((c) => c.args[0].input.ClientToken);
    expect(b).toBe(a);
  });

  it('adopts an existing copy found by provenance tags, pending included, without copying', async () => {
    describeImages([sourceImage()], [copyImage()]);
    expect(await invoke('start-copy', { source: summary, target })).toMatchObject({
      imageId: COPY_ID,
      adopted: true,
      startedAt: '2026-03-02T10:20:00.000Z',
    });
    expect(ec2).not.toHaveReceivedCommand(CopyImageCommand);
  });

  it('on InvalidAMIName.Duplicate adopts the same-named copy of this source, or renames around an unrelated image', async () => {
    describeImages([sourceImage(), copyImage({ ImageId: 'ami-0ccccccccccccccc2' })]);
    ec2.on(CopyImageCommand).rejects(awsError('InvalidAMIName.Duplicate'));
    expect(await invoke('start-copy', { source: summary, target })).toMatchObject({
      imageId: 'ami-0ccccccccccccccc2',
      adopted: true,
    });

    ec2.reset();
    describeImages([
      sourceImage(),
      copyImage({ ImageId: 'ami-0ddddddddddddddd3', Tags: [] }),
      copyImage({ Name: `web-2026.03.02 (${SOURCE_ID} from us-east-1)` }),
    ]);
    ec2.on(CopyImageCommand).rejectsOnce(awsError('InvalidAMIName.Duplicate')).resolves({ ImageId: COPY_ID });
    expect(await invoke('start-copy', { source: summary, target })).toMatchObject({ imageId: COPY_ID, adopted: false });
    const names = ec2.commandCalls(CopyImageCommand).map((c) => c.args[0].input.Name);
    expect(names).toEqual(['web-2026.03.02', `web-2026.03.02 (${SOURCE_ID} from us-east-1)`]);
  });

  it('on InvalidAMIName.Duplicate does not adopt the same-named copy someone else made of the source (no provenance tags): it copies under another name', async () => {
    const userCopy = copyImage({
      ImageId: 'ami-0ddddddddddddddd3',
      State: 'available',
      Tags: [],
      SourceImageId: SOURCE_ID,
      SourceImageRegion: 'us-east-1',
    });
    describeImages([sourceImage(), userCopy, copyImage({ Name: `web-2026.03.02 (${SOURCE_ID} from us-east-1)` })]);
    ec2.on(CopyImageCommand).rejectsOnce(awsError('InvalidAMIName.Duplicate')).resolves({ ImageId: COPY_ID });
    expect(await invoke('start-copy', { source: summary, target })).toMatchObject({ imageId: COPY_ID, adopted: false });
    expect(ec2).toHaveReceivedCommandTimes(CopyImageCommand, 2);
  });

  it('refuses a public source before copying (its encrypted copy could not be public)', async () => {
    await expect(invoke('start-copy', { source: { ...summary, public: true }, target })).rejects.toMatchObject({
      name: 'PublicEncryptedImageError',
    });
    expect(ec2).not.toHaveReceivedCommand(CopyImageCommand);
  });

  it('copies a public source when the policy does not copy launch permissions (its copy stays private)', async () => {
    describeImages([sourceImage(), copyImage()]);
    ec2.on(CopyImageCommand).resolves({ ImageId: COPY_ID });
    const deps = { clients: createClients(), policy: policy({ replication: { copyLaunchPermissions: false } }) };
    expect(await startCopy({ source: { ...summary, public: true }, target }, deps)).toMatchObject({
      imageId: COPY_ID,
      encrypted: true,
    });
    expect(ec2).toHaveReceivedCommandTimes(CopyImageCommand, 1);
  });

  it('copies an instance-store source without encryption and says why', async () => {
    describeImages([
      sourceImage({ RootDeviceType: 'instance-store', BlockDeviceMappings: [] }),
      copyImage({ RootDeviceType: 'instance-store' }),
    ]);
    ec2.on(CopyImageCommand).resolves({ ImageId: COPY_ID });
    const out = await invoke('start-copy', { source: { ...summary, rootDeviceType: 'instance-store' }, target });
    expect(out).toMatchObject({
      encrypted: false,
      note: expect.stringMatching(/cannot re-encrypt/) as unknown as string,
    });
    const copy = ec2.commandCalls(CopyImageCommand)[0]!.args[0].input;
    expect(copy.Encrypted).toBeUndefined();
    expect(copy.KmsKeyId).toBeUndefined();
    expect(copy.TagSpecifications?.map((s) => s.ResourceType)).toEqual(['image']);
  });

  it('turns ResourceLimitExceeded into CopyQuotaFullError (the state machine parks it) until the branch parked its most', async () => {
    describeImages([sourceImage()]);
    ec2.on(CopyImageCommand).rejects(awsError('ResourceLimitExceeded'));
    for (const parks of [undefined, SLOT_WAIT.maxParks - 1])
      await expect(invoke('start-copy', { source: summary, target, parks })).rejects.toMatchObject({
        name: 'CopyQuotaFullError',
        cause: { name: 'ResourceLimitExceeded' },
      });
    await expect(invoke('start-copy', { source: summary, target, parks: SLOT_WAIT.maxParks })).rejects.toMatchObject({
      name: 'ResourceLimitExceeded',
    });
  });
});

describe('check-copy handler', () => {
  it('reports pending with the next, longer wait', async () => {
    describeImages([copyImage()]);
    expect(await invoke('check-copy', { source: summary, target, copy: copyStatus() })).toMatchObject({
      state: 'pending',
      checks: 2,
      waitSeconds: 8 * 3600,
      pastDeadline: false,
    });
  });
  it('reports available with the time it was seen', async () => {
    describeImages([copyImage({ State: 'available' })]);
    const out = (await invoke('check-copy', { source: summary, target, copy: copyStatus() })) as {
      availableAt?: string;
      state: string;
    };
    expect(out.state).toBe('available');
    expect(out.availableAt).toBeDefined();
  });
  it('reports failed with the StateReason', async () => {
    describeImages([
      copyImage({
        State: 'failed',
        StateReason: { Code: 'Client.InvalidKMSKey.InvalidState', Message: 'The KMS key is disabled.' },
      }),
    ]);
    expect(await invoke('check-copy', { source: summary, target, copy: copyStatus() })).toMatchObject({
      state: 'failed',
      reason: 'The KMS key is disabled.',
    });
  });
  it('marks a copy still pending after its deadline', async () => {
    describeImages([copyImage()]);
    expect(
      await invoke('check-copy', {
        source: summary,
        target,
        copy: copyStatus({ deadline: '2020-01-01T00:00:00.000Z' }),
      }),
    ).toMatchObject({ pastDeadline: true });
  });
});

describe('finalize-copy handler', () => {
  it('re-applies tags on image and snapshots, launch permissions, snapshot permissions, deprecation and protection', async () => {
    const ORG = 'arn:aws:organizations::111122223333:organization/o-abcdefghij';
    describeImages([sourceImage(), copyImage({ State: 'available' })]);
    ec2.on(DescribeImageAttributeCommand).resolves({
      LaunchPermissions: [{ UserId: '111111111111' }, { UserId: '222222222222' }, { OrganizationArn: ORG }],
    });
    ec2.on(CreateTagsCommand).resolves({});
    ec2.on(ModifyImageAttributeCommand).resolves({});
    ec2.on(ModifySnapshotAttributeCommand).resolves({});
    ec2.on(EnableImageDeprecationCommand).resolves({});
    ec2.on(EnableImageDeregistrationProtectionCommand).resolves({});
    const KEY_ARN = 'arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    ec2.on(DescribeSnapshotsCommand).resolves({
      Snapshots: [{ SnapshotId: 'snap-0copy0000000000001', Encrypted: true, KmsKeyId: KEY_ARN }],
    });
    const out = await invoke('finalize-copy', {
      source: summary,
      target,
      copy: copyStatus({ state: 'available', availableAt: '2026-03-02T10:45:00.000Z' }),
    });

    expect(out).toMatchObject({
      region: 'us-west-2',
      status: 'available',
      imageId: COPY_ID,
      // The key EC2 reports on the copy's snapshot, not the alias StartCopy asked for.
      kmsKeyId: KEY_ARN,
      lagSeconds: 1800,
      applied: { launchPermissions: 3, snapshotPermissions: 2, deregistrationProtection: true },
    });
    const tagCall = ec2.commandCalls(CreateTagsCommand)[0]!.args[0].input;
    expect(tagCall.Resources).toEqual([COPY_ID, 'snap-0copy0000000000001']);
    const tags = Object.fromEntries(tagCall.Tags?.map((t) => [t.Key, t.Value]) ?? []);
    expect(tags).toMatchObject({ Team: 'web', 'ami-dr:replicated-at': '2026-03-02T10:45:00.000Z' });
    expect(ec2).toHaveReceivedCommandWith(ModifyImageAttributeCommand, {
      ImageId: COPY_ID,
      LaunchPermission: { Add: [{ UserId: '111111111111' }, { UserId: '222222222222' }, { OrganizationArn: ORG }] },
    });
    expect(ec2).toHaveReceivedCommandWith(ModifySnapshotAttributeCommand, {
      SnapshotId: 'snap-0copy0000000000001',
      CreateVolumePermission: { Add: [{ UserId: '111111111111' }, { UserId: '222222222222' }] },
    });
    expect(ec2).toHaveReceivedCommandWith(EnableImageDeprecationCommand, {
      ImageId: COPY_ID,
      DeprecateAt: new Date('2099-01-01T00:00:00.000Z'),
    });
    expect(ec2).toHaveReceivedCommandWith(EnableImageDeregistrationProtectionCommand, { ImageId: COPY_ID });
  });

  it('fails with PublicEncryptedImageError when the source became public, sharing nothing', async () => {
    describeImages([sourceImage(), copyImage({ State: 'available' })]);
    ec2.on(DescribeImageAttributeCommand).resolves({ LaunchPermissions: [{ Group: 'all' }] });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    await expect(
      invoke('finalize-copy', { source: summary, target, copy: copyStatus({ state: 'available' }) }),
    ).rejects.toMatchObject({ name: 'PublicEncryptedImageError' });
    expect(ec2).not.toHaveReceivedCommand(ModifyImageAttributeCommand);
  });
});

describe('cleanup-copy handler', () => {
  it('deregisters the failed copy with its snapshots and reports the region failed with the reason', async () => {
    describeImages([copyImage({ State: 'failed' })], [copyImage({ State: 'failed' })]);
    ec2.on(DeregisterImageCommand).resolves({
      Return: true,
      DeleteSnapshotResults: [{ SnapshotId: 'snap-0copy0000000000001', ReturnCode: 'success' }],
    });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    const out = await invoke('cleanup-copy', {
      source: summary,
      target,
      copy: copyStatus({ state: 'failed', reason: 'The KMS key is disabled.' }),
    });
    expect(out).toMatchObject({
      region: 'us-west-2',
      status: 'failed',
      error: 'CopyFailedError',
      reason: 'The KMS key is disabled.',
      cleanup: { deregistered: [COPY_ID], snapshotsDeleted: ['snap-0copy0000000000001'], problems: [] },
    });
    expect(ec2).toHaveReceivedCommandWith(DeregisterImageCommand, {
      ImageId: COPY_ID,
      DeleteAssociatedSnapshots: true,
    });
  });

  it('is safe to run twice: an image already gone counts as removed, leftover snapshots are deleted, in-use ones kept', async () => {
    describeImages([], []);
    ec2.on(DeregisterImageCommand).rejects(awsError('InvalidAMIID.NotFound'));
    ec2
      .on(DescribeSnapshotsCommand)
      .resolves({ Snapshots: [{ SnapshotId: 'snap-0left0000000000001' }, { SnapshotId: 'snap-0used0000000000001' }] });
    ec2.on(DeleteSnapshotCommand, { SnapshotId: 'snap-0left0000000000001' }).resolves({});
    ec2.on(DeleteSnapshotCommand, { SnapshotId: 'snap-0used0000000000001' }).rejects(awsError('InvalidSnapshot.InUse'));
    const out = await invoke('cleanup-copy', { source: summary, target, copy: copyStatus({ pastDeadline: true }) });
    expect(out).toMatchObject({
      error: 'CopyTimedOutError',
      cleanup: {
        deregistered: [],
        snapshotsDeleted: ['snap-0left0000000000001'],
        problems: [expect.stringMatching(/snap-0used.*in use/) as unknown as string],
      },
    });
  });

  it('never deregisters an image that is not a replica of this source, whatever id it is handed', async () => {
    describeImages([copyImage({ State: 'failed', Tags: [{ Key: 'Team', Value: 'web' }] })], []);
    ec2.on(DeregisterImageCommand).resolves({ Return: true, DeleteSnapshotResults: [] });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    const out = await invoke('cleanup-copy', { source: summary, target, copy: copyStatus({ state: 'failed' }) });
    expect(out).toMatchObject({ status: 'failed', cleanup: { deregistered: [] } });
    expect(ec2).not.toHaveReceivedCommand(DeregisterImageCommand);
    expect(ec2).not.toHaveReceivedCommand(DeleteSnapshotCommand);
  });

  it("reports the caught error of an earlier step, and removes failed copies of the source it finds, never another execution's pending one", async () => {
    describeImages(
      [],
      [
        copyImage({ State: 'failed' }),
        copyImage({ ImageId: 'ami-0eeeeeeeeeeeeeee4', State: 'available' }),
        copyImage({ ImageId: 'ami-0eeeeeeeeeeeeeee5', State: 'pending' }),
      ],
    );
    ec2.on(DeregisterImageCommand).resolves({ Return: true, DeleteSnapshotResults: [] });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    const out = await invoke('cleanup-copy', {
      source: summary,
      target,
      error: {
        Error: 'ResourceLimitExceeded',
        Cause: JSON.stringify({ errorType: 'ResourceLimitExceeded', errorMessage: 'too many copies in flight' }),
      },
    });
    expect(out).toMatchObject({ error: 'ResourceLimitExceeded', reason: 'too many copies in flight' });
    expect(ec2).toHaveReceivedCommandTimes(DeregisterImageCommand, 1);
    expect(ec2).toHaveReceivedCommandWith(DeregisterImageCommand, { ImageId: COPY_ID });
  });
});

describe('summarize handler', () => {
  const ok = { region: 'us-west-2', status: 'available', imageId: COPY_ID, lagSeconds: 1800 };
  const bad = { region: 'eu-west-1', status: 'failed', error: 'CopyFailedError', reason: 'key disabled' };
  it('reports the outcome per region and lag, emits metrics, and notifies on failure', async () => {
    const added = vi.spyOn(metrics, 'addMetric');
    vi.spyOn(metrics, 'publishStoredMetrics').mockImplementation(() => metrics);
    sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
    const out = await invoke('summarize', {
      source: { region: 'us-east-1', imageId: SOURCE_ID },
      image: summary,
      results: [ok, bad],
    });
    expect(out).toMatchObject({ outcome: 'partial', succeeded: 1, failed: 1, maxLagSeconds: 1800, notified: true });
    expect(added.mock.calls.map(([name, , value]) => [name, value])).toEqual([
      ['ReplicationSucceeded', 1],
      ['ReplicationFailed', 1],
      ['ReplicationLagSeconds', 1800],
    ]);
    expect(sns).toHaveReceivedCommandWith(PublishCommand, {
      TopicArn: TOPIC,
      Subject: `ami-dr: replication of ${SOURCE_ID} failed in eu-west-1`,
    });
  });
  it('does not notify when every region succeeded', async () => {
    vi.spyOn(metrics, 'publishStoredMetrics').mockImplementation(() => metrics);
    const out = await invoke('summarize', { source: { region: 'us-east-1', imageId: SOURCE_ID }, results: [ok] });
    expect(out).toMatchObject({ outcome: 'replicated', notified: false });
    expect(sns).not.toHaveReceivedAnyCommand();
  });
});

describe('await-copy handler', () => {
  beforeEach(() => {
    ddb.reset();
    sfn.reset();
  });
  const input = { source: summary, target, execution: 'x', copy: copyStatus(), token: 'token-1' };

  it('stores the token with the copy status for the event, and leaves a pending copy to it', async () => {
    describeImages([copyImage()]);
    expect(await invoke('await-copy', input)).toMatchObject({ result: 'waiting' });
    expect(ddb).toHaveReceivedCommandWith(PutItemCommand, {
      TableName: TABLE,
      Item: expect.objectContaining({ copy: { S: `us-west-2/${COPY_ID}` }, token: { S: 'token-1' } }),
    });
    expect(sfn).not.toHaveReceivedCommand(SendTaskSuccessCommand);
  });

  it('completes its own wait when the copy was done before the token was stored (the event came first)', async () => {
    describeImages([copyImage({ State: 'available' })]);
    ddb.on(DeleteItemCommand).resolves({ Attributes: { token: { S: 'token-1' }, status: { S: '{}' } } });
    expect(await invoke('await-copy', input)).toMatchObject({ result: 'completed' });
    const sent = sfn.commandCalls(SendTaskSuccessCommand)[0]!.args[0].input;
    expect(sent.taskToken).toBe('token-1');
    expect(JSON.parse(sent.output!)).toMatchObject({ imageId: COPY_ID, state: 'available', checks: 2 });
  });

  it('leaves the token alone when the event handler took it first', async () => {
    describeImages([copyImage({ State: 'available' })]);
    ddb.on(DeleteItemCommand).resolves({});
    expect(await invoke('await-copy', input)).toMatchObject({ result: 'taken' });
    expect(sfn).not.toHaveReceivedCommand(SendTaskSuccessCommand);
  });
});

describe('on-copy-state handler', () => {
  beforeEach(() => {
    ddb.reset();
    sfn.reset();
  });
  const event = (state: string) => ({
    ...(sample('ami-state-change-replica.json') as Record<string, unknown>),
    region: 'us-west-2',
    detail: { ImageId: COPY_ID, State: state },
  });

  it('takes the waiting token and wakes the replication with the copy state, failed too', async () => {
    describeImages([copyImage({ State: 'failed', StateReason: { Code: 'x', Message: 'key disabled' } })]);
    ddb.on(DeleteItemCommand).resolves({
      Attributes: { token: { S: 'token-1' }, status: { S: JSON.stringify(copyStatus()) } },
    });
    expect(await invoke('on-copy-state', event('failed'))).toMatchObject({
      action: 'woken',
      state: 'failed',
      sourceRegion: 'us-east-1',
    });
    expect(ddb).toHaveReceivedCommandWith(DeleteItemCommand, {
      TableName: TABLE,
      Key: { copy: { S: `us-west-2/${COPY_ID}` } },
      ReturnValues: 'ALL_OLD',
    });
    const sent = sfn.commandCalls(SendTaskSuccessCommand)[0]!.args[0].input;
    expect(JSON.parse(sent.output!)).toMatchObject({ state: 'failed', reason: 'key disabled' });
  });

  it('ignores a token whose wait already ended (TaskTimedOut)', async () => {
    describeImages([copyImage({ State: 'available' })]);
    ddb.on(DeleteItemCommand).resolves({
      Attributes: { token: { S: 'token-1' }, status: { S: JSON.stringify(copyStatus()) } },
    });
    sfn.on(SendTaskSuccessCommand).rejects(awsError('TaskTimedOut'));
    expect(await invoke('on-copy-state', event('available'))).toMatchObject({
      action: 'ignored',
      reason: 'the wait had already ended',
    });
  });

  it('ignores images that are not ami-dr copies without touching the table', async () => {
    describeImages([copyImage({ State: 'available', Tags: [] })]);
    expect(await invoke('on-copy-state', event('available'))).toMatchObject({
      action: 'ignored',
      reason: 'not an ami-dr copy',
    });
    expect(ddb).not.toHaveReceivedCommand(DeleteItemCommand);
  });
});

describe('await-slot handler', () => {
  const payload = { source: summary, target, execution: 'exec-1', since: '2026-03-02T10:00:00.000Z', parks: 2 };

  it('parks the token in the queue of the target region, ordered by the execution start', async () => {
    expect(await invoke('await-slot', { ...payload, token: 'token-9' })).toEqual({
      result: 'waiting',
      queue: 'us-west-2',
      order: '2026-03-02T10:00:00.000Z#exec-1',
    });
    expect(ddb).toHaveReceivedCommandWith(PutItemCommand, {
      TableName: QUEUE_TABLE,
      Item: expect.objectContaining({
        queue: { S: 'us-west-2' },
        order: { S: '2026-03-02T10:00:00.000Z#exec-1' },
        token: { S: 'token-9' },
        sourceRegion: { S: 'us-east-1' },
        parks: { N: '2' },
      }),
    });
  });

  it('after a wait nobody answered, takes the branch out of the queue and counts the wait', async () => {
    ddb.on(DeleteItemCommand).resolves({});
    expect(await invoke('await-slot', { ...payload, leave: true })).toEqual({ parks: 2 });
    expect(ddb).toHaveReceivedCommandWith(DeleteItemCommand, {
      TableName: QUEUE_TABLE,
      Key: { queue: { S: 'us-west-2' }, order: { S: '2026-03-02T10:00:00.000Z#exec-1' } },
    });
  });
});

describe('the slot a copy frees, handed on by finalize-copy and cleanup-copy', () => {
  const waiter = (order: string, token: string) => ({
    queue: { S: 'us-west-2' },
    order: { S: order },
    token: { S: token },
    sourceRegion: { S: 'us-east-1' },
    parks: { N: '1' },
  });
  const finalize = () => {
    describeImages([sourceImage(), copyImage({ State: 'available' })]);
    ec2.on(DescribeImageAttributeCommand).resolves({ LaunchPermissions: [] });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    return invoke('finalize-copy', { source: summary, target, copy: copyStatus({ state: 'available' }) });
  };

  it('wakes a waiter of the region, read among the oldest, with its park count, the token taken once', async () => {
    ddb.on(QueryCommand).resolves({ Items: [waiter('a#exec-1', 'token-a')] });
    ddb.on(DeleteItemCommand).resolves({ Attributes: waiter('a#exec-1', 'token-a') });
    await finalize();
    expect(ddb).toHaveReceivedCommandWith(QueryCommand, {
      TableName: QUEUE_TABLE,
      ExpressionAttributeValues: { ':queue': { S: 'us-west-2' } },
      Limit: HANDOFF_PAGE,
      ConsistentRead: true,
    });
    expect(ddb).toHaveReceivedCommandWith(DeleteItemCommand, {
      TableName: QUEUE_TABLE,
      Key: { queue: { S: 'us-west-2' }, order: { S: 'a#exec-1' } },
      ReturnValues: 'ALL_OLD',
    });
    expect(sfn.commandCalls(SendTaskSuccessCommand).map((c) => c.args[0].input)).toEqual([
      { taskToken: 'token-a', output: JSON.stringify({ parks: 1 }) },
    ]);
  });

  it('skips a waiter whose wait already ended and wakes the next; does not fail the copy when the queue is unreachable', async () => {
    ddb
      .on(QueryCommand)
      .resolvesOnce({ Items: [waiter('a#exec-1', 'token-a')] })
      .resolves({ Items: [waiter('b#exec-2', 'token-b')] });
    ddb
      .on(DeleteItemCommand)
      .resolvesOnce({ Attributes: waiter('a#exec-1', 'token-a') })
      .resolves({ Attributes: waiter('b#exec-2', 'token-b') });
    sfn.on(SendTaskSuccessCommand).rejectsOnce(awsError('TaskTimedOut')).resolves({});
    await finalize();
    expect(sfn.commandCalls(SendTaskSuccessCommand).map((c) => c.args[0].input.taskToken)).toEqual([
      'token-a',
      'token-b',
    ]);

    ddb.reset();
    sfn.reset();
    ddb.on(QueryCommand).rejects(awsError('ProvisionedThroughputExceededException'));
    await expect(finalize()).resolves.toMatchObject({ status: 'available' });
  });

  it('cleanup hands on the slot of a failed copy, and none when no copy was ever made', async () => {
    describeImages([copyImage({ State: 'failed' })], [copyImage({ State: 'failed' })]);
    ec2.on(DeregisterImageCommand).resolves({ Return: true, DeleteSnapshotResults: [] });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    await invoke('cleanup-copy', { source: summary, target, copy: copyStatus({ state: 'failed' }) });
    expect(ddb).toHaveReceivedCommandTimes(QueryCommand, 1);

    ddb.resetHistory();
    await invoke('cleanup-copy', { source: summary, target, error: { Error: 'ResourceLimitExceeded' } });
    expect(ddb).not.toHaveReceivedCommand(QueryCommand);
  });
});
