import {
  CopyImageCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  type CopyImageCommandInput,
} from '@aws-sdk/client-ec2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TwinEvent } from '../../../local/twin/events.ts';
import { ec2, failure, manualTwin } from './helpers.ts';

const SOURCE = 'us-east-1';
const DR = 'us-west-2';
let twin: Awaited<ReturnType<typeof manualTwin>>;
let key: { keyId: string; arn: string };

beforeAll(async () => {
  twin = await manualTwin({ copyDurationMs: 10 * 60_000 });
  key = twin.seed.key(DR, { alias: 'ami-dr' });
});
afterEach(() => twin.faults.clear());
afterAll(async () => {
  await twin.stop();
});

let counter = 0;
function sourceImage(extra: Parameters<typeof twin.seed.image>[1] | object = {}): string {
  return twin.seed.image(SOURCE, { name: `src-${++counter}`, tags: { app: 'shop', 'aws:managed': 'x' }, ...extra });
}

async function copy(input: Partial<CopyImageCommandInput> & { SourceImageId: string }, region = DR): Promise<string> {
  const { ImageId } = await ec2(twin, region).send(
    new CopyImageCommand({ SourceRegion: SOURCE, Name: `copy-${++counter}`, ...input }),
  );
  return ImageId as string;
}

async function describe1(imageId: string, region = DR) {
  const { Images } = await ec2(twin, region).send(new DescribeImagesCommand({ ImageIds: [imageId] }));
  return Images?.[0];
}

describe('CopyImage', () => {
  it('starts pending with encrypted snapshots under the resolved key, then turns available', async () => {
    const source = sourceImage({ sizeGiB: 30 });
    const imageId = await copy({
      SourceImageId: source,
      Encrypted: true,
      KmsKeyId: 'alias/ami-dr',
      Description: 'dr copy',
      CopyImageTags: true,
      TagSpecifications: [
        { ResourceType: 'image', Tags: [{ Key: 'ami-dr:role', Value: 'replica' }] },
        { ResourceType: 'snapshot', Tags: [{ Key: 'ami-dr:role', Value: 'replica-disk' }] },
      ],
    });

    const pending = await describe1(imageId);
    const snapshotId = pending?.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId as string;
    const pendingSnapshot = (await ec2(twin, DR).send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] })))
      .Snapshots?.[0];
    twin.clock.advance(10 * 60_000 - 1);
    const stillPending = await describe1(imageId);
    twin.clock.advance(1);
    const available = await describe1(imageId);
    const snapshot = (await ec2(twin, DR).send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] })))
      .Snapshots?.[0];

    expect(pending).toMatchObject({
      State: 'pending',
      SourceImageId: source,
      SourceImageRegion: SOURCE,
      Description: 'dr copy',
    });
    expect(pending?.Tags).toEqual(
      expect.arrayContaining([
        { Key: 'app', Value: 'shop' },
        { Key: 'ami-dr:role', Value: 'replica' },
      ]),
    );
    expect(pending?.Tags?.some((t) => t.Key?.startsWith('aws:'))).toBe(false);
    expect(pendingSnapshot).toMatchObject({
      State: 'pending',
      Encrypted: true,
      KmsKeyId: key.arn,
      VolumeSize: 30,
      Tags: [{ Key: 'ami-dr:role', Value: 'replica-disk' }],
    });
    expect(stillPending?.State).toBe('pending');
    expect(available?.State).toBe('available');
    expect(available?.BlockDeviceMappings?.[0]?.Ebs?.Encrypted).toBe(true);
    expect(snapshot?.State).toBe('completed');
  });

  it('finishes by the time-based completion duration when one is asked for', async () => {
    const imageId = await copy({ SourceImageId: sourceImage(), SnapshotCopyCompletionDurationMinutes: 30 });
    twin.clock.advance(10 * 60_000);
    const atDefault = await describe1(imageId);
    twin.clock.advance(20 * 60_000);
    expect(atDefault?.State).toBe('pending');
    expect((await describe1(imageId))?.State).toBe('available');
  });

  it.each([
    ['disabled', 'Disabled' as const, 'Client.InvalidKMSKey.InvalidState', /is disabled/],
    ['pending deletion', 'PendingDeletion' as const, 'Client.InvalidKMSKey.InvalidState', /pending deletion/],
  ])('accepts the call but fails the copy when the key is %s', async (_, state, code, message) => {
    const region = state === 'Disabled' ? 'eu-west-1' : 'eu-west-2';
    const bad = twin.seed.key(region, { alias: 'ami-dr', state });
    const imageId = await copy({ SourceImageId: sourceImage(), Encrypted: true, KmsKeyId: 'alias/ami-dr' }, region);
    const pending = await describe1(imageId, region);
    twin.clock.advance(10 * 60_000);
    const failed = await describe1(imageId, region);
    const snapshotId = failed?.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId as string;
    const snapshot = (await ec2(twin, region).send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] })))
      .Snapshots?.[0];

    expect(pending?.State).toBe('pending');
    expect(failed?.State).toBe('failed');
    expect(failed?.StateReason?.Code).toBe(code);
    expect(failed?.StateReason?.Message).toMatch(message);
    expect(failed?.StateReason?.Message).toContain(bad.arn);
    expect(snapshot?.State).toBe('error');
  });

  it('fails the copy when the key does not exist in the destination region (even if it exists elsewhere)', async () => {
    const imageId = await copy({ SourceImageId: sourceImage(), Encrypted: true, KmsKeyId: key.arn }, 'ca-central-1');
    twin.clock.advance(10 * 60_000);
    const failed = await describe1(imageId, 'ca-central-1');
    expect(failed?.State).toBe('failed');
    expect(failed?.StateReason?.Code).toBe('Client.InvalidKMSKey.NotFound');
  });

  it('decides the key at completion: a key disabled while the copy runs fails it', async () => {
    const region = 'ap-northeast-1';
    const late = twin.seed.key(region, { alias: 'ami-dr' });
    const imageId = await copy({ SourceImageId: sourceImage(), Encrypted: true, KmsKeyId: 'alias/ami-dr' }, region);
    const record = twin.state.region(region).keys.get(late.keyId);
    if (record) record.state = 'Disabled';
    twin.clock.advance(10 * 60_000);
    expect((await describe1(imageId, region))?.State).toBe('failed');
  });

  it('fails copies into a region with an injected fault, and only there', async () => {
    twin.faults.failCopies(DR, 'region outage');
    const failing = await copy({ SourceImageId: sourceImage() });
    const fine = await copy({ SourceImageId: sourceImage() }, 'eu-north-1');
    twin.clock.advance(10 * 60_000);
    const failed = await describe1(failing);
    expect(failed?.State).toBe('failed');
    expect(failed?.StateReason?.Message).toContain('region outage');
    expect((await describe1(fine, 'eu-north-1'))?.State).toBe('available');
  });

  it('is idempotent per ClientToken: same parameters give the same image, different ones an error', async () => {
    const source = sourceImage();
    const input = {
      SourceImageId: source,
      Name: `idem-${counter}`,
      Encrypted: true,
      KmsKeyId: 'alias/ami-dr',
      ClientToken: `token-${counter}`,
    };
    const first = await copy(input);
    const again = await copy(input);
    const mismatch = await failure(copy({ ...input, Description: 'something else' }));

    expect(again).toBe(first);
    expect(mismatch.name).toBe('IdempotentParameterMismatch');
    expect([...twin.state.region(DR).images.values()].filter((i) => i.sourceImageId === source)).toHaveLength(1);
  });

  it('rejects a name already used by an image of the account in that region', async () => {
    const source = sourceImage();
    await copy({ SourceImageId: source, Name: 'dr-name-taken' });
    const duplicate = await failure(copy({ SourceImageId: source, Name: 'dr-name-taken' }));
    const elsewhere = await copy({ SourceImageId: source, Name: 'dr-name-taken' }, 'us-east-2');
    expect(duplicate.name).toBe('InvalidAMIName.Duplicate');
    expect(elsewhere).toMatch(/^ami-/);
  });

  it('rejects a missing, malformed or not yet available source', async () => {
    const pending = sourceImage({ state: 'pending' });
    expect((await failure(copy({ SourceImageId: 'ami-0123456789abcdef0' }))).name).toBe('InvalidAMIID.NotFound');
    expect((await failure(copy({ SourceImageId: 'ami-nope' }))).name).toBe('InvalidAMIID.Malformed');
    expect((await failure(copy({ SourceImageId: pending }))).name).toBe('InvalidAMIID.Unavailable');
    // The source is looked up in SourceRegion, not where the call is made.
    expect((await failure(copy({ SourceImageId: sourceImage(), SourceRegion: 'eu-west-3' }))).name).toBe(
      'InvalidAMIID.NotFound',
    );
  });

  it.each([
    [{ SnapshotCopyCompletionDurationMinutes: 10 }, 'InvalidParameterValue'],
    [{ SnapshotCopyCompletionDurationMinutes: 20 }, 'InvalidParameterValue'],
    [{ SnapshotCopyCompletionDurationMinutes: 2895 }, 'InvalidParameterValue'],
    [
      { DestinationOutpostArn: 'arn:aws:outposts:us-west-2:000000000000:outpost/op-0123456789abcdef0' },
      'UnsupportedOperation',
    ],
    [{ KmsKeyId: 'alias/ami-dr' }, 'InvalidParameterCombination'],
    [{ Name: 'x' }, 'InvalidAMIName.Malformed'],
    [{ Description: 'd'.repeat(256) }, 'InvalidParameterValue'],
    [
      { TagSpecifications: [{ ResourceType: 'instance' as const, Tags: [{ Key: 'a', Value: 'b' }] }] },
      'InvalidParameterValue',
    ],
    [
      { TagSpecifications: [{ ResourceType: 'image' as const, Tags: [{ Key: 'aws:x', Value: 'b' }] }] },
      'InvalidParameterValue',
    ],
  ])('rejects %j with %s', async (extra, code) => {
    expect((await failure(copy({ SourceImageId: sourceImage(), ...extra }))).name).toBe(code);
  });

  it('accepts the completion duration bounds 15 and 2880 minutes', async () => {
    await expect(copy({ SourceImageId: sourceImage(), SnapshotCopyCompletionDurationMinutes: 15 })).resolves.toMatch(
      /^ami-/,
    );
    await expect(copy({ SourceImageId: sourceImage(), SnapshotCopyCompletionDurationMinutes: 2880 })).resolves.toMatch(
      /^ami-/,
    );
    twin.clock.advance(2880 * 60_000);
  });

  it('keeps an encrypted source encrypted (default EBS key of the destination) when no key is given', async () => {
    const source = sourceImage({ encrypted: true });
    const imageId = await copy({ SourceImageId: source });
    const snapshotId = (await describe1(imageId))?.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId as string;
    const snapshot = (await ec2(twin, DR).send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] })))
      .Snapshots?.[0];
    expect(snapshot?.Encrypted).toBe(true);
    expect(snapshot?.KmsKeyId).toBe(twin.state.resolve(DR, 'alias/aws/ebs')?.arn);
    twin.clock.advance(10 * 60_000);
  });

  it('copies instance-store images without snapshots, and refuses to encrypt them', async () => {
    const source = sourceImage({ rootDeviceType: 'instance-store', imageLocation: 'bundles/app/image.manifest.xml' });
    const imageId = await copy({ SourceImageId: source });
    twin.clock.advance(10 * 60_000);
    const image = await describe1(imageId);
    const encrypted = await failure(copy({ SourceImageId: source, Encrypted: true }));

    expect(image).toMatchObject({ State: 'available', RootDeviceType: 'instance-store' });
    expect(image?.ImageLocation).toMatch(new RegExp(`^amis-for-${twin.accountId}-in-${DR}-[0-9a-f]{8}/`));
    expect(encrypted.name).toBe('InvalidParameterCombination');
  });

  it('limits concurrent copies per destination region and frees the slot when a copy completes', async () => {
    const region = 'ap-southeast-2';
    twin.faults.copyQuota(2);
    await copy({ SourceImageId: sourceImage() }, region);
    await copy({ SourceImageId: sourceImage() }, region);
    const third = await failure(copy({ SourceImageId: sourceImage() }, region));
    const otherRegion = await copy({ SourceImageId: sourceImage() }, 'ap-southeast-1');
    twin.clock.advance(10 * 60_000);
    const afterwards = await copy({ SourceImageId: sourceImage() }, region);

    expect(third.name).toBe('ResourceLimitExceeded');
    expect(twin.state.region(region).copiesInFlight).toBe(1);
    expect(otherRegion).toMatch(/^ami-/);
    expect(afterwards).toMatch(/^ami-/);
  });

  it('frees the quota slot of a pending copy that is deregistered, and never completes it', async () => {
    const region = 'me-south-1';
    twin.faults.copyQuota(1);
    const first = await copy({ SourceImageId: sourceImage() }, region);
    await ec2(twin, region).send(new DeregisterImageCommand({ ImageId: first, DeleteAssociatedSnapshots: true }));
    const second = await copy({ SourceImageId: sourceImage() }, region);
    twin.clock.advance(10 * 60_000);
    await twin.settle();

    expect(second).toMatch(/^ami-/);
    expect(twin.events.history.filter((e) => e.detail.ImageId === first).map((e) => e.detail.State)).toEqual([
      'deregistered',
    ]);
  });

  it('takes the copy duration from the fault settings at call time', async () => {
    twin.faults.copyDuration(60_000);
    const imageId = await copy({ SourceImageId: sourceImage() });
    twin.clock.advance(60_000);
    expect((await describe1(imageId))?.State).toBe('available');
  });
});

describe('CopyImage events', () => {
  it('records the call in the destination region and announces the outcome there', async () => {
    const region = 'us-east-2';
    const seen: TwinEvent[] = [];
    const unsubscribe = twin.events.subscribe((e) => seen.push(e));
    const source = sourceImage();
    const imageId = await copy(
      { SourceImageId: source, Encrypted: true, KmsKeyId: 'alias/missing', ClientToken: 'evt-1' },
      region,
    );
    await failure(copy({ SourceImageId: 'ami-0123456789abcdef0' }, region));
    twin.clock.advance(10 * 60_000);
    await twin.settle();
    unsubscribe();

    const trail = seen.filter((e) => e['detail-type'] === 'AWS API Call via CloudTrail');
    const change = seen.find((e) => e['detail-type'] === 'EC2 AMI State Change' && e.detail.ImageId === imageId);
    expect(trail).toHaveLength(2);
    expect(trail[0]).toMatchObject({
      version: '0',
      source: 'aws.ec2',
      account: twin.accountId,
      region,
      resources: [],
      detail: {
        eventSource: 'ec2.amazonaws.com',
        eventName: 'CopyImage',
        awsRegion: region,
        recipientAccountId: twin.accountId,
        userIdentity: {
          type: 'AssumedRole',
          accountId: twin.accountId,
          arn: `arn:aws:sts::${twin.accountId}:assumed-role/builder/test`,
        },
        requestParameters: {
          sourceRegion: SOURCE,
          sourceImageId: source,
          encrypted: true,
          kmsKeyId: 'alias/missing',
          clientToken: 'evt-1',
        },
        responseElements: { imageId },
      },
    });
    expect(trail[0]?.detail.errorCode).toBeUndefined();
    expect(trail[1]?.detail).toMatchObject({
      eventName: 'CopyImage',
      errorCode: 'InvalidAMIID.NotFound',
      responseElements: null,
    });
    expect(trail[1]?.detail.errorMessage).toContain('ami-0123456789abcdef0');
    expect(change).toMatchObject({ source: 'aws.ec2', region, detail: { ImageId: imageId, State: 'failed' } });
    expect(String(change?.detail.ErrorMessage)).toContain('Client.InvalidKMSKey.NotFound');
  });
});
