import {
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeleteTagsCommand,
  DeregisterImageCommand,
  DescribeSnapshotAttributeCommand,
  DescribeSnapshotsCommand,
  ModifySnapshotAttributeCommand,
  paginateDescribeSnapshots,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ec2, failure, manualTwin } from './helpers.ts';

const REGION = 'eu-west-1';
let twin: Awaited<ReturnType<typeof manualTwin>>;

beforeAll(async () => {
  twin = await manualTwin();
});
afterAll(async () => {
  await twin.stop();
});

describe('DescribeSnapshots', () => {
  it('describes by id with size, encryption, key and tags', async () => {
    const { arn } = twin.seed.key(REGION, { alias: 'disks' });
    const snapshotId = twin.seed.snapshot(REGION, { sizeGiB: 64, kmsKeyId: 'alias/disks', tags: { app: 'db' } });
    const { Snapshots } = await ec2(twin, REGION).send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }));
    expect(Snapshots?.[0]).toMatchObject({
      SnapshotId: snapshotId,
      OwnerId: twin.accountId,
      VolumeSize: 64,
      Encrypted: true,
      KmsKeyId: arn,
      State: 'completed',
      Progress: '100%',
      Tags: [{ Key: 'app', Value: 'db' }],
    });
  });

  it('filters by owner and tags and pages with paginateDescribeSnapshots', async () => {
    const region = 'eu-south-1';
    for (let i = 0; i < 25; i++) twin.seed.snapshot(region, { tags: { batch: i % 2 === 0 ? 'even' : 'odd' } });
    twin.seed.snapshot(region, { ownerId: '111122223333', createVolumePermissions: [{ userId: twin.accountId }] });
    twin.seed.snapshot(region, { ownerId: '444455556666' });
    const client = ec2(twin, region);

    const even: string[] = [];
    let pages = 0;
    for await (const page of paginateDescribeSnapshots(
      { client, pageSize: 5 },
      { OwnerIds: ['self'], Filters: [{ Name: 'tag:batch', Values: ['even'] }] },
    )) {
      pages++;
      even.push(...(page.Snapshots ?? []).map((s) => s.SnapshotId as string));
    }
    const all = await client.send(new DescribeSnapshotsCommand({}));
    const shared = await client.send(new DescribeSnapshotsCommand({ OwnerIds: ['111122223333'] }));

    expect(even).toHaveLength(13);
    expect(new Set(even).size).toBe(13);
    expect(pages).toBe(3);
    expect(all.Snapshots).toHaveLength(26);
    expect(shared.Snapshots).toHaveLength(1);
  });

  it('rejects unknown and malformed snapshot ids', async () => {
    const client = ec2(twin, REGION);
    expect(
      (await failure(client.send(new DescribeSnapshotsCommand({ SnapshotIds: ['snap-0123456789abcdef0'] })))).name,
    ).toBe('InvalidSnapshot.NotFound');
    expect((await failure(client.send(new DescribeSnapshotsCommand({ SnapshotIds: ['snap-zz'] })))).name).toBe(
      'InvalidSnapshotID.Malformed',
    );
  });
});

describe('DeleteSnapshot', () => {
  it('refuses a snapshot a registered image uses, and deletes it once the image is gone', async () => {
    const client = ec2(twin, REGION);
    const snapshotId = twin.seed.snapshot(REGION);
    const imageId = twin.seed.image(REGION, { name: 'uses-it', snapshotIds: [snapshotId] });

    const inUse = await failure(client.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })));
    await client.send(new DeregisterImageCommand({ ImageId: imageId }));
    await client.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
    const gone = await failure(client.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] })));

    expect(inUse.name).toBe('InvalidSnapshot.InUse');
    expect(inUse.message).toContain(imageId);
    expect(gone.name).toBe('InvalidSnapshot.NotFound');
  });

  it('refuses an unknown snapshot', async () => {
    const error = await failure(
      ec2(twin, REGION).send(new DeleteSnapshotCommand({ SnapshotId: 'snap-0123456789abcdef0' })),
    );
    expect(error.name).toBe('InvalidSnapshot.NotFound');
  });
});

describe('createVolumePermission', () => {
  it('adds and removes accounts', async () => {
    const client = ec2(twin, REGION);
    const snapshotId = twin.seed.snapshot(REGION);
    await client.send(
      new ModifySnapshotAttributeCommand({
        SnapshotId: snapshotId,
        Attribute: 'createVolumePermission',
        CreateVolumePermission: { Add: [{ UserId: '111122223333' }, { UserId: '444455556666' }] },
      }),
    );
    await client.send(
      new ModifySnapshotAttributeCommand({
        SnapshotId: snapshotId,
        Attribute: 'createVolumePermission',
        OperationType: 'remove',
        UserIds: ['111122223333'],
      }),
    );
    const { CreateVolumePermissions, SnapshotId } = await client.send(
      new DescribeSnapshotAttributeCommand({ SnapshotId: snapshotId, Attribute: 'createVolumePermission' }),
    );

    expect(SnapshotId).toBe(snapshotId);
    expect(CreateVolumePermissions).toEqual([{ UserId: '444455556666' }]);
  });

  it('refuses to make an encrypted snapshot public, or to share one under the AWS managed EBS key', async () => {
    const client = ec2(twin, REGION);
    const customer = twin.seed.key(REGION, { alias: 'share' });
    const encrypted = twin.seed.snapshot(REGION, { kmsKeyId: customer.arn });
    const managed = twin.seed.snapshot(REGION, { encrypted: true });

    const toAll = await failure(
      client.send(
        new ModifySnapshotAttributeCommand({
          SnapshotId: encrypted,
          Attribute: 'createVolumePermission',
          CreateVolumePermission: { Add: [{ Group: 'all' }] },
        }),
      ),
    );
    const managedShare = await failure(
      client.send(
        new ModifySnapshotAttributeCommand({
          SnapshotId: managed,
          Attribute: 'createVolumePermission',
          CreateVolumePermission: { Add: [{ UserId: '111122223333' }] },
        }),
      ),
    );
    await client.send(
      new ModifySnapshotAttributeCommand({
        SnapshotId: encrypted,
        Attribute: 'createVolumePermission',
        CreateVolumePermission: { Add: [{ UserId: '111122223333' }] },
      }),
    );

    expect(toAll.name).toBe('InvalidParameterValue');
    expect(managedShare.name).toBe('InvalidParameterValue');
  });
});

describe('tags on snapshots', () => {
  it('creates and deletes tags, and names the unknown snapshot', async () => {
    const client = ec2(twin, REGION);
    const snapshotId = twin.seed.snapshot(REGION, { tags: { a: '1' } });
    await client.send(new CreateTagsCommand({ Resources: [snapshotId], Tags: [{ Key: 'b', Value: '2' }] }));
    await client.send(new DeleteTagsCommand({ Resources: [snapshotId], Tags: [{ Key: 'a' }] }));
    const { Snapshots } = await client.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }));
    const unknown = await failure(
      client.send(new CreateTagsCommand({ Resources: ['snap-0123456789abcdef0'], Tags: [{ Key: 'b', Value: '2' }] })),
    );

    expect(Snapshots?.[0]?.Tags).toEqual([{ Key: 'b', Value: '2' }]);
    expect(unknown.name).toBe('InvalidSnapshot.NotFound');
  });
});
