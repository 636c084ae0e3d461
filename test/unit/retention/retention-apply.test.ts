import {
  CreateTagsCommand,
  DeregisterImageCommand,
  EC2Client,
  EC2ServiceException,
  EnableImageDeprecationCommand,
} from '@aws-sdk/client-ec2';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { TokenBucketPacer } from '../../../lib/aws/pacer.ts';
import { applyRetentionPlan } from '../../../lib/aws/retention-apply.ts';
import type { DeprecateAction, DeregisterAction, RetentionPlan } from '../../../lib/domain/retention-planner.ts';
import { ACCOUNT, NOW } from './fixtures.ts';

const ec2 = mockClient(EC2Client);
const s3 = mockClient(S3Client);
const ec2Error = (name: string) =>
  new EC2ServiceException({ name, $fault: 'client', $metadata: {}, message: `${name} happened` });
const s3Error = (name: string) => new S3ServiceException({ name, $fault: 'client', $metadata: {}, message: name });

beforeEach(() => {
  ec2.reset();
  s3.reset();
});

function fakeTime(start = NOW) {
  let t = start;
  return { now: () => t, sleep: async (ms: number) => void (t += ms), elapsed: () => t - start };
}

const deregister = (imageId: string, extra: Partial<DeregisterAction> = {}): DeregisterAction => ({
  action: 'deregister',
  rule: 'deregister-after-days',
  imageId,
  name: `name-${imageId}`,
  scope: 'sources',
  detail: 'old',
  rootDeviceType: 'ebs',
  snapshots: [{ snapshotId: `snap-${imageId}`, sizeGiB: 8, sharedWithKeptImage: false }],
  ...extra,
});
const deprecate = (imageId: string): DeprecateAction => ({
  action: 'deprecate',
  rule: 'deprecate-after-days',
  imageId,
  name: imageId,
  scope: 'sources',
  detail: 'old',
  deprecateAt: new Date(NOW).toISOString(),
});
const plan = (...actions: RetentionPlan['actions']): RetentionPlan => ({
  region: 'us-east-1',
  accountId: ACCOUNT,
  now: new Date(NOW).toISOString(),
  actions,
  errors: [],
  warnings: [],
  expectedSnapshotGiB: 0,
});
const apply = (p: RetentionPlan, extra: Partial<Parameters<typeof applyRetentionPlan>[1]> = {}) =>
  applyRetentionPlan(p, {
    ec2: new EC2Client({ maxAttempts: 1 }),
    s3: new S3Client({ maxAttempts: 1 }),
    pacer: new TokenBucketPacer(fakeTime()),
    ...extra,
  });

const manifestXml =
  '<manifest><image><bundled_size>2048</bundled_size><parts count="2"><part index="0"><filename>image.part.00</filename></part><part index="1"><filename>image.part.01</filename></part></parts></image></manifest>';

describe('applyRetentionPlan', () => {
  it('deregisters with DeleteAssociatedSnapshots and reports each snapshot, skipped ones kept but not errors', async () => {
    ec2.on(DeregisterImageCommand).resolves({
      Return: true,
      DeleteSnapshotResults: [
        { SnapshotId: 'snap-ami-1', ReturnCode: 'success' },
        { SnapshotId: 'snap-shared', ReturnCode: 'skipped' },
      ],
    });
    const out = await apply(
      plan(
        deregister('ami-1', {
          snapshots: [
            { snapshotId: 'snap-ami-1', sizeGiB: 8, sharedWithKeptImage: false },
            { snapshotId: 'snap-shared', sizeGiB: 20, sharedWithKeptImage: true },
          ],
        }),
      ),
    );
    expect(ec2).toHaveReceivedCommandWith(DeregisterImageCommand, {
      ImageId: 'ami-1',
      DeleteAssociatedSnapshots: true,
    });
    expect(out.removed).toEqual([
      {
        imageId: 'ami-1',
        name: 'name-ami-1',
        rootDeviceType: 'ebs',
        alreadyGone: false,
        snapshots: [
          { snapshotId: 'snap-ami-1', returnCode: 'success', sizeGiB: 8 },
          { snapshotId: 'snap-shared', returnCode: 'skipped', sizeGiB: 20 },
        ],
      },
    ]);
    expect(out.errors).toEqual([]);
    // One CreateTags journaling both snapshots before the image goes, then DeregisterImage.
    expect(ec2).toHaveReceivedCommandWith(CreateTagsCommand, {
      Resources: ['snap-ami-1', 'snap-shared'],
      Tags: [{ Key: 'ami-dr:journal', Value: 'ami-1' }],
    });
    expect(out.mutatingCalls).toBe(2);
  });

  it('journals every image before deregistering it and counts each call once, however many work at once', async () => {
    const order: string[] = [];
    ec2.on(CreateTagsCommand).callsFake(async (input: { Tags: { Value: string }[] }) => {
      order.push(`tag ${input.Tags[0]!.Value}`);
      return {};
    });
    ec2.on(DeregisterImageCommand).callsFake(async (input: { ImageId: string }) => {
      order.push(`deregister ${input.ImageId}`);
      return { DeleteSnapshotResults: [{ SnapshotId: `snap-${input.ImageId}`, ReturnCode: 'success' }] };
    });
    const ids = Array.from({ length: 8 }, (_, i) => `ami-${i}`);
    const out = await apply(plan(...ids.map((id) => deregister(id))), { concurrency: 4 });
    for (const id of ids) expect(order.indexOf(`tag ${id}`)).toBeLessThan(order.indexOf(`deregister ${id}`));
    expect(out.removed).toHaveLength(8);
    expect(out.mutatingCalls).toBe(16);
  });

  it('leaves the image registered when its journal entry cannot be written', async () => {
    ec2.on(CreateTagsCommand).rejects(ec2Error('UnauthorizedOperation'));
    const out = await apply(plan(deregister('ami-1')));
    expect(ec2).not.toHaveReceivedCommand(DeregisterImageCommand);
    expect(out.errors).toEqual([
      expect.objectContaining({ step: 'journal', imageId: 'ami-1', code: 'UnauthorizedOperation' }),
    ]);
  });

  it('reports snapshots AWS could not delete as errors', async () => {
    ec2
      .on(DeregisterImageCommand)
      .resolves({ DeleteSnapshotResults: [{ SnapshotId: 'snap-ami-1', ReturnCode: 'missing-permissions' }] });
    const out = await apply(plan(deregister('ami-1')));
    expect(out.errors).toEqual([
      {
        step: 'deregister',
        imageId: 'ami-1',
        code: 'Snapshot.missing-permissions',
        message: 'snapshot snap-ami-1 was not deleted: missing-permissions; it stays in the journal',
      },
    ]);
  });

  it('treats an image already gone as done, not removed twice, and not an error', async () => {
    ec2.on(DeregisterImageCommand).rejects(ec2Error('InvalidAMIID.NotFound'));
    ec2.on(EnableImageDeprecationCommand).rejects(ec2Error('InvalidAMIID.Unavailable'));
    const out = await apply(plan(deregister('ami-1'), deprecate('ami-2')));
    expect(out.removed).toEqual([expect.objectContaining({ imageId: 'ami-1', alreadyGone: true, snapshots: [] })]);
    expect(out.deprecated).toEqual([expect.objectContaining({ imageId: 'ami-2', alreadyGone: true })]);
    expect(out.errors).toEqual([]);
  });

  it('reports other failures per image and carries on', async () => {
    ec2.on(DeregisterImageCommand, { ImageId: 'ami-1' }).rejects(ec2Error('OperationNotPermitted'));
    ec2.on(DeregisterImageCommand, { ImageId: 'ami-2' }).resolves({ DeleteSnapshotResults: [] });
    const out = await apply(plan(deregister('ami-1'), deregister('ami-2')));
    expect(out.errors).toEqual([
      {
        step: 'deregister',
        imageId: 'ami-1',
        code: 'OperationNotPermitted',
        message: 'OperationNotPermitted happened',
      },
    ]);
    expect(out.removed.map((r) => r.imageId)).toEqual(['ami-2']);
  });

  it('deprecates at the plan time, or a minute ahead of now when the plan time has passed', async () => {
    ec2.on(EnableImageDeprecationCommand).resolves({ Return: true });
    const time = fakeTime(NOW + 90 * 60_000 + 5);
    const out = await apply(plan(deprecate('ami-1')), { pacer: new TokenBucketPacer(time) });
    const expected = new Date(NOW + 91 * 60_000).toISOString();
    expect(ec2).toHaveReceivedCommandWith(EnableImageDeprecationCommand, {
      ImageId: 'ami-1',
      DeprecateAt: new Date(expected),
    });
    expect(out.deprecated).toEqual([{ imageId: 'ami-1', name: 'ami-1', deprecateAt: expected }]);
  });

  it('instance-store: reads the manifest, deregisters, then deletes exactly the parts and the manifest', async () => {
    s3.on(GetObjectCommand).resolves({ Body: { transformToString: async () => manifestXml } as never });
    s3.on(DeleteObjectsCommand).resolves({});
    ec2.on(DeregisterImageCommand).resolves({ Return: true });
    const out = await apply(
      plan(
        deregister('ami-s3', {
          rootDeviceType: 'instance-store',
          imageLocation: 'bundles/web/image.manifest.xml',
          snapshots: [],
        }),
      ),
    );
    expect(ec2).toHaveReceivedCommandWith(DeregisterImageCommand, {
      ImageId: 'ami-s3',
      DeleteAssociatedSnapshots: false,
    });
    const deleted = s3
      .commandCalls(DeleteObjectsCommand)
      .flatMap((c) => c.args[0].input.Delete?.Objects?.map((o) => o.Key));
    expect(deleted).toEqual(['web/image.part.00', 'web/image.part.01', 'web/image.manifest.xml']);
    expect(out.removed[0]?.bundle).toEqual({
      bucket: 'bundles',
      manifestKey: 'web/image.manifest.xml',
      deletedKeys: deleted,
      bytes: 2048,
    });
    // The journal object is written before DeregisterImage and deleted once the manifest is gone.
    const journal = s3.commandCalls(PutObjectCommand)[0]?.args[0].input;
    expect(journal).toMatchObject({ Bucket: 'bundles', Key: 'ami-dr/journal/ami-s3.json' });
    expect(JSON.parse(String(journal?.Body))).toMatchObject({
      imageId: 'ami-s3',
      manifestKey: 'web/image.manifest.xml',
      partKeys: ['web/image.part.00', 'web/image.part.01'],
    });
    expect(s3).toHaveReceivedCommandWith(DeleteObjectCommand, { Bucket: 'bundles', Key: 'ami-dr/journal/ami-s3.json' });
    expect(out.mutatingCalls).toBe(5);
  });

  it.each([
    [
      'a malformed manifest',
      () => s3.on(GetObjectCommand).resolves({ Body: { transformToString: async () => '<manifest><image>' } as never }),
      'InvalidManifestError',
      /is not valid XML/,
    ],
    [
      'a missing bucket',
      () => s3.on(GetObjectCommand).rejects(s3Error('NoSuchBucket')),
      'BundleNotFoundError',
      /bucket bundles .* does not exist/,
    ],
  ])(
    'instance-store with %s: a clear error for that image, nothing touched, the others done',
    async (_label, arrange, code, message) => {
      arrange();
      ec2.on(DeregisterImageCommand).resolves({ DeleteSnapshotResults: [] });
      const out = await apply(
        plan(
          deregister('ami-s3', {
            rootDeviceType: 'instance-store',
            imageLocation: 'bundles/web/image.manifest.xml',
            snapshots: [],
          }),
          deregister('ami-ebs'),
        ),
      );
      expect(out.errors).toEqual([
        { step: 'bundle', imageId: 'ami-s3', code, message: expect.stringMatching(message) },
      ]);
      expect(ec2).not.toHaveReceivedCommandWith(DeregisterImageCommand, { ImageId: 'ami-s3' });
      expect(s3).not.toHaveReceivedCommand(DeleteObjectsCommand);
      expect(out.removed.map((r) => r.imageId)).toEqual(['ami-ebs']);
    },
  );

  it('instance-store whose bundle another image still names: deregisters, leaves the bundle, says so', async () => {
    ec2.on(DeregisterImageCommand).resolves({ Return: true });
    const out = await apply(
      plan(
        deregister('ami-s3', {
          rootDeviceType: 'instance-store',
          imageLocation: 'bundles/web/image.manifest.xml',
          snapshots: [],
          keepBundle: true,
        }),
      ),
    );
    expect(ec2).toHaveReceivedCommandWith(DeregisterImageCommand, {
      ImageId: 'ami-s3',
      DeleteAssociatedSnapshots: false,
    });
    expect(s3).not.toHaveReceivedCommand(GetObjectCommand);
    expect(s3).not.toHaveReceivedCommand(DeleteObjectsCommand);
    expect(out.removed).toEqual([expect.objectContaining({ imageId: 'ami-s3', alreadyGone: false, bundleKept: true })]);
    expect(out.removed[0]?.bundle).toBeUndefined();
    expect(out.errors).toEqual([]);
  });

  it('instance-store already deregistered: still deletes its bundle', async () => {
    s3.on(GetObjectCommand).resolves({ Body: { transformToString: async () => manifestXml } as never });
    s3.on(DeleteObjectsCommand).resolves({});
    ec2.on(DeregisterImageCommand).rejects(ec2Error('InvalidAMIID.NotFound'));
    const out = await apply(
      plan(
        deregister('ami-s3', {
          rootDeviceType: 'instance-store',
          imageLocation: 'bundles/web/image.manifest.xml',
          snapshots: [],
        }),
      ),
    );
    expect(out.removed[0]).toMatchObject({
      alreadyGone: true,
      bundle: { deletedKeys: ['web/image.part.00', 'web/image.part.01', 'web/image.manifest.xml'] },
    });
  });

  it('paces removals to the DeregisterImage bucket: 100 at once, then 5 a second', async () => {
    ec2.on(DeregisterImageCommand).resolves({ DeleteSnapshotResults: [] });
    const time = fakeTime();
    const ids = Array.from({ length: 150 }, (_, i) => `ami-${i}`);
    const out = await apply(plan(...ids.map((id) => deregister(id))), { pacer: new TokenBucketPacer(time) });
    expect(out.removed).toHaveLength(150);
    expect(time.elapsed()).toBe(10_000);
  });

  it('retries a throttle that got past the SDK after waiting for the bucket', async () => {
    ec2
      .on(DeregisterImageCommand)
      .rejectsOnce(ec2Error('RequestLimitExceeded'))
      .rejectsOnce(ec2Error('RequestLimitExceeded'))
      .resolves({ DeleteSnapshotResults: [] });
    const time = fakeTime();
    const out = await apply(plan(deregister('ami-1')), { pacer: new TokenBucketPacer(time) });
    expect(out.removed).toHaveLength(1);
    expect(out.errors).toEqual([]);
    expect(ec2).toHaveReceivedCommandTimes(DeregisterImageCommand, 3);
    expect(time.elapsed()).toBeGreaterThan(0);
  });

  it('stops before the deadline, leaving the rest pending for the next run', async () => {
    ec2.on(DeregisterImageCommand).resolves({ DeleteSnapshotResults: [] });
    ec2.on(EnableImageDeprecationCommand).resolves({});
    const time = fakeTime();
    const ids = Array.from({ length: 300 }, (_, i) => `ami-${i}`);
    // 100 at once, then 5/s: 30 s of budget (2 s kept in hand) allows 100 + 5 * 28 = 240.
    const out = await apply(plan(...ids.map((id) => deregister(id)), deprecate('ami-dep')), {
      pacer: new TokenBucketPacer(time),
      deadline: NOW + 30_000,
    });
    expect(out.stoppedEarly).toBe(true);
    expect(out.removed.length).toBeGreaterThanOrEqual(235);
    expect(out.removed.length).toBeLessThanOrEqual(241);
    expect(out.removed.length + out.pending.length).toBe(300);
    expect(out.deprecated).toHaveLength(1);
    expect(new Set([...out.removed.map((r) => r.imageId), ...out.pending.map((p) => p.imageId)]).size).toBe(300);
    expect(time.now()).toBeLessThanOrEqual(NOW + 30_000);
  });

  it('acts on nothing but deprecate and deregister actions', async () => {
    const out = await apply(
      plan({ action: 'keep', rule: 'retained', imageId: 'ami-k', name: 'k', reason: 'retained', detail: '' }),
    );
    expect(ec2.calls()).toHaveLength(0);
    expect(out).toEqual({
      deprecated: [],
      removed: [],
      errors: [],
      pending: [],
      stoppedEarly: false,
      mutatingCalls: 0,
    });
  });
});
