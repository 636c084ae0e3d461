import {
  CreateImageCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  RegisterImageCommand,
  paginateDescribeImages,
  type Image,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClients, ec2Client } from '../../../lib/aws/clients.ts';
import { listImages } from '../../../lib/aws/images.ts';
import { START, ec2, failure, manualTwin } from './helpers.ts';

const REGION = 'eu-central-1';
let twin: Awaited<ReturnType<typeof manualTwin>>;

beforeAll(async () => {
  twin = await manualTwin({ createDurationMs: 30_000 });
});
afterAll(async () => {
  await twin.stop();
});

describe('DescribeImages', () => {
  const region = 'ap-south-1';
  let ids: Record<string, string>;

  beforeAll(() => {
    const deprecatedAt = START - 86_400_000;
    ids = {
      web: twin.seed.image(region, { name: 'web-1.0', tags: { app: 'web', team: 'blue' }, sizeGiB: 20 }),
      api: twin.seed.image(region, {
        name: 'api-2.1',
        tags: { app: 'api' },
        sourceImageId: 'ami-0aaaaaaaaaaaaaaaa',
        sourceImageRegion: 'us-east-1',
      }),
      store: twin.seed.image(region, {
        name: 'legacy-store',
        rootDeviceType: 'instance-store',
        imageLocation: 'bundles/legacy/image.manifest.xml',
      }),
      failed: twin.seed.image(region, {
        name: 'broken',
        state: 'failed',
        stateReason: { code: 'Client.Error', message: 'Client.Error: broken' },
      }),
      deprecated: twin.seed.image(region, { name: 'old-web', deprecationTime: deprecatedAt }),
      disabled: twin.seed.image(region, { name: 'disabled-one', state: 'disabled' }),
      amazon: twin.seed.image(region, {
        name: 'al2023',
        ownerId: '137112412989',
        imageOwnerAlias: 'amazon',
        launchPermissions: [{ group: 'all' }],
      }),
      amazonOld: twin.seed.image(region, {
        name: 'al2',
        ownerId: '137112412989',
        imageOwnerAlias: 'amazon',
        launchPermissions: [{ group: 'all' }],
        deprecationTime: deprecatedAt,
      }),
      shared: twin.seed.image(region, {
        name: 'partner',
        ownerId: '111122223333',
        launchPermissions: [{ userId: twin.accountId }],
      }),
      hidden: twin.seed.image(region, { name: 'private-elsewhere', ownerId: '444455556666' }),
      backup: twin.seed.image(region, { name: 'AwsBackup_ami', imageOwnerAlias: 'aws-backup-vault' }),
    };
  });

  const names = (images: Image[] | undefined) => (images ?? []).map((i) => i.Name).sort();

  it('returns every field ami-dr reads, as the SDK parses them', async () => {
    const { Images } = await ec2(twin, region).send(new DescribeImagesCommand({ ImageIds: [ids.web as string] }));
    const image = Images?.[0];
    const snapshotId = image?.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId;

    expect(image).toMatchObject({
      ImageId: ids.web,
      Name: 'web-1.0',
      State: 'available',
      OwnerId: twin.accountId,
      CreationDate: new Date(START).toISOString(),
      Public: false,
      RootDeviceType: 'ebs',
      DeregistrationProtection: 'disabled',
      Tags: expect.arrayContaining([
        { Key: 'app', Value: 'web' },
        { Key: 'team', Value: 'blue' },
      ]),
      BlockDeviceMappings: [
        {
          DeviceName: '/dev/xvda',
          Ebs: {
            SnapshotId: snapshotId,
            VolumeSize: 20,
            Encrypted: false,
            DeleteOnTermination: true,
            VolumeType: 'gp3',
          },
        },
      ],
    });
    expect(snapshotId).toMatch(/^snap-[0-9a-f]{17}$/);
  });

  it('without owners shows own, public and shared images, never another account private ones', async () => {
    const { Images } = await ec2(twin, region).send(new DescribeImagesCommand({}));
    expect(names(Images)).toEqual([
      'AwsBackup_ami',
      'al2023',
      'api-2.1',
      'broken',
      'legacy-store',
      'old-web',
      'partner',
      'web-1.0',
    ]);
  });

  it('filters by owner: self, account id, amazon, aws-backup-vault', async () => {
    const client = ec2(twin, region);
    const self = await client.send(new DescribeImagesCommand({ Owners: ['self'] }));
    const partner = await client.send(new DescribeImagesCommand({ Owners: ['111122223333'] }));
    const amazon = await client.send(new DescribeImagesCommand({ Owners: ['amazon'] }));
    const backup = await client.send(new DescribeImagesCommand({ Owners: ['aws-backup-vault'] }));

    expect(names(self.Images)).toEqual(['AwsBackup_ami', 'api-2.1', 'broken', 'legacy-store', 'old-web', 'web-1.0']);
    expect(names(partner.Images)).toEqual(['partner']);
    expect(names(amazon.Images)).toEqual(['al2023']);
    expect(backup.Images?.[0]).toMatchObject({ Name: 'AwsBackup_ami', ImageOwnerAlias: 'aws-backup-vault' });
  });

  it("shows others' deprecated images only with IncludeDeprecated, and disabled ones only with IncludeDisabled", async () => {
    const client = ec2(twin, region);
    const plain = await client.send(new DescribeImagesCommand({ Owners: ['amazon'] }));
    const withDeprecated = await client.send(
      new DescribeImagesCommand({ Owners: ['amazon'], IncludeDeprecated: true }),
    );
    const withDisabled = await client.send(new DescribeImagesCommand({ Owners: ['self'], IncludeDisabled: true }));

    expect(names(plain.Images)).toEqual(['al2023']);
    expect(names(withDeprecated.Images)).toEqual(['al2', 'al2023']);
    expect(names(withDisabled.Images)).toContain('disabled-one');
    expect(withDisabled.Images?.find((i) => i.Name === 'old-web')?.DeprecationTime).toBe(
      new Date(START - 86_400_000).toISOString(),
    );
  });

  it.each([
    [[{ Name: 'tag:app', Values: ['web'] }], ['web-1.0']],
    [[{ Name: 'tag-key', Values: ['team'] }], ['web-1.0']],
    [[{ Name: 'state', Values: ['failed'] }], ['broken']],
    [[{ Name: 'root-device-type', Values: ['instance-store'] }], ['legacy-store']],
    [[{ Name: 'source-image-id', Values: ['ami-0aaaaaaaaaaaaaaaa'] }], ['api-2.1']],
    [[{ Name: 'source-image-region', Values: ['us-east-1'] }], ['api-2.1']],
    [[{ Name: 'name', Values: ['*web*'] }], ['old-web', 'web-1.0']],
    [[{ Name: 'name', Values: ['api-?.?'] }], ['api-2.1']],
    [[{ Name: 'manifest-location', Values: ['bundles/*'] }], ['legacy-store']],
    [[{ Name: 'is-public', Values: ['true'] }], []],
    [
      [
        { Name: 'state', Values: ['available'] },
        { Name: 'tag:app', Values: ['web', 'api'] },
      ],
      ['api-2.1', 'web-1.0'],
    ],
  ])('filters %j', async (Filters, expected) => {
    const { Images } = await ec2(twin, region).send(new DescribeImagesCommand({ Owners: ['self'], Filters }));
    expect(names(Images)).toEqual(expected);
  });

  it('filters by image id and by snapshot id', async () => {
    const client = ec2(twin, region);
    const { Images } = await client.send(
      new DescribeImagesCommand({ Filters: [{ Name: 'image-id', Values: [ids.api as string] }] }),
    );
    const snapshotId = twin.state.region(region).images.get(ids.web as string)?.blockDeviceMappings[0]?.ebs
      ?.snapshotId as string;
    const bySnapshot = await client.send(
      new DescribeImagesCommand({ Filters: [{ Name: 'block-device-mapping.snapshot-id', Values: [snapshotId] }] }),
    );

    expect(names(Images)).toEqual(['api-2.1']);
    expect(names(bySnapshot.Images)).toEqual(['web-1.0']);
  });

  it('reports a failed image with its reason', async () => {
    const { Images } = await ec2(twin, region).send(new DescribeImagesCommand({ ImageIds: [ids.failed as string] }));
    expect(Images?.[0]?.StateReason).toEqual({ Code: 'Client.Error', Message: 'Client.Error: broken' });
  });

  it('rejects unknown, invisible and malformed image ids, and unknown filters', async () => {
    const client = ec2(twin, region);
    const unknown = await failure(client.send(new DescribeImagesCommand({ ImageIds: ['ami-0123456789abcdef0'] })));
    const invisible = await failure(client.send(new DescribeImagesCommand({ ImageIds: [ids.hidden as string] })));
    const malformed = await failure(client.send(new DescribeImagesCommand({ ImageIds: ['ami-xyz'] })));
    const badFilter = await failure(
      client.send(new DescribeImagesCommand({ Filters: [{ Name: 'colour', Values: ['red'] }] })),
    );

    expect(unknown.name).toBe('InvalidAMIID.NotFound');
    expect(unknown.$metadata?.httpStatusCode).toBe(400);
    expect(invisible.name).toBe('InvalidAMIID.NotFound');
    expect(malformed.name).toBe('InvalidAMIID.Malformed');
    expect(badFilter.name).toBe('InvalidParameterValue');
  });
});

describe('DescribeImages pagination', () => {
  const region = 'sa-east-1';

  it('pages through every image once with paginateDescribeImages', async () => {
    for (let i = 0; i < 2_345; i++) twin.seed.image(region, { name: `bulk-${i}` });
    const seen: string[] = [];
    let pages = 0;
    for await (const page of paginateDescribeImages(
      { client: ec2(twin, region), pageSize: 1000 },
      { Owners: ['self'] },
    )) {
      pages++;
      for (const image of page.Images ?? []) seen.push(image.ImageId as string);
    }
    expect(pages).toBe(3);
    expect(seen).toHaveLength(2_345);
    expect(new Set(seen).size).toBe(2_345);
  });

  it('serves lib/aws listImages (the project adapter) over several pages', async () => {
    const clients = createClients({ endpoint: twin.endpoint });
    const images = await listImages(ec2Client(clients, region), region, {
      owners: ['self'],
      filters: { name: ['bulk-1*'] },
    });
    expect(images).toHaveLength(1 + 10 + 100 + 1000);
    expect(images[0]).toMatchObject({ region, ownerId: twin.accountId, state: 'available' });
  });

  it('rejects a made-up NextToken and an out-of-range MaxResults', async () => {
    const client = ec2(twin, region);
    expect((await failure(client.send(new DescribeImagesCommand({ NextToken: 'bogus', MaxResults: 10 })))).name).toBe(
      'InvalidPaginationToken',
    );
    expect((await failure(client.send(new DescribeImagesCommand({ MaxResults: 5000 })))).name).toBe(
      'InvalidParameterValue',
    );
  });
});

describe('CreateImage', () => {
  it('makes a pending image with snapshots and tags, available after the create duration', async () => {
    const client = ec2(twin, REGION);
    const base = twin.seed.image(REGION, { name: 'base', sizeGiB: 16 });
    const instanceId = twin.seed.instance(REGION, { imageId: base });

    const { ImageId } = await client.send(
      new CreateImageCommand({
        InstanceId: instanceId,
        Name: 'app-2026.01.01',
        Description: 'nightly',
        TagSpecifications: [
          { ResourceType: 'image', Tags: [{ Key: 'app', Value: 'shop' }] },
          { ResourceType: 'snapshot', Tags: [{ Key: 'app', Value: 'shop-disk' }] },
        ],
      }),
    );
    const pending = (await client.send(new DescribeImagesCommand({ ImageIds: [ImageId as string] }))).Images?.[0];
    twin.clock.advance(30_000);
    const done = (await client.send(new DescribeImagesCommand({ ImageIds: [ImageId as string] }))).Images?.[0];
    const snapshotId = done?.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId as string;
    const { Snapshots } = await client.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }));

    expect(pending).toMatchObject({
      State: 'pending',
      Name: 'app-2026.01.01',
      Description: 'nightly',
      SourceInstanceId: instanceId,
      Tags: [{ Key: 'app', Value: 'shop' }],
    });
    expect(done?.State).toBe('available');
    expect(Snapshots?.[0]).toMatchObject({
      State: 'completed',
      VolumeSize: 16,
      Tags: [{ Key: 'app', Value: 'shop-disk' }],
    });
  });

  it('rejects an unknown instance, a duplicate name, a malformed name and an untaggable resource type', async () => {
    const client = ec2(twin, REGION);
    const instanceId = twin.seed.instance(REGION, { imageId: 'ami-0123456789abcdef0' });
    twin.seed.image(REGION, { name: 'taken' });

    const unknown = await failure(
      client.send(new CreateImageCommand({ InstanceId: 'i-0123456789abcdef0', Name: 'x-1' })),
    );
    const duplicate = await failure(client.send(new CreateImageCommand({ InstanceId: instanceId, Name: 'taken' })));
    const malformed = await failure(client.send(new CreateImageCommand({ InstanceId: instanceId, Name: 'no*stars' })));
    const badType = await failure(
      client.send(
        new CreateImageCommand({
          InstanceId: instanceId,
          Name: 'fine',
          TagSpecifications: [{ ResourceType: 'volume', Tags: [{ Key: 'a', Value: 'b' }] }],
        }),
      ),
    );

    expect(unknown.name).toBe('InvalidInstanceID.NotFound');
    expect(duplicate.name).toBe('InvalidAMIName.Duplicate');
    expect(malformed.name).toBe('InvalidAMIName.Malformed');
    expect(badType.name).toBe('InvalidParameterValue');
  });
});

describe('RegisterImage', () => {
  it('registers an EBS image from a snapshot, available at once', async () => {
    const client = ec2(twin, REGION);
    const snapshotId = twin.seed.snapshot(REGION, { sizeGiB: 12 });
    const { ImageId } = await client.send(
      new RegisterImageCommand({
        Name: 'registered-ebs',
        RootDeviceName: '/dev/xvda',
        BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { SnapshotId: snapshotId } }],
        TagSpecifications: [{ ResourceType: 'image', Tags: [{ Key: 'origin', Value: 'import' }] }],
      }),
    );
    const image = (await client.send(new DescribeImagesCommand({ ImageIds: [ImageId as string] }))).Images?.[0];
    expect(image).toMatchObject({
      State: 'available',
      RootDeviceType: 'ebs',
      Tags: [{ Key: 'origin', Value: 'import' }],
    });
    expect(image?.BlockDeviceMappings?.[0]?.Ebs).toMatchObject({ SnapshotId: snapshotId, VolumeSize: 12 });
  });

  it('registers an instance-store image from its manifest location', async () => {
    const client = ec2(twin, REGION);
    const { ImageId } = await client.send(
      new RegisterImageCommand({ Name: 'registered-s3', ImageLocation: 'my-bundles/app/image.manifest.xml' }),
    );
    const image = (await client.send(new DescribeImagesCommand({ ImageIds: [ImageId as string] }))).Images?.[0];
    expect(image).toMatchObject({
      State: 'available',
      RootDeviceType: 'instance-store',
      ImageLocation: 'my-bundles/app/image.manifest.xml',
    });
  });

  it('rejects an unknown snapshot and a call with neither manifest nor root snapshot', async () => {
    const client = ec2(twin, REGION);
    const unknown = await failure(
      client.send(
        new RegisterImageCommand({
          Name: 'r-1',
          RootDeviceName: '/dev/xvda',
          BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { SnapshotId: 'snap-0123456789abcdef0' } }],
        }),
      ),
    );
    const neither = await failure(client.send(new RegisterImageCommand({ Name: 'r-2' })));
    expect(unknown.name).toBe('InvalidSnapshot.NotFound');
    expect(neither.name).toBe('InvalidParameterCombination');
  });
});

describe('DeregisterImage', () => {
  it('deletes the snapshots it alone used and skips one another image still uses', async () => {
    const client = ec2(twin, REGION);
    const shared = twin.seed.snapshot(REGION, { sizeGiB: 8 });
    const own = twin.seed.snapshot(REGION, { sizeGiB: 8 });
    const image = twin.seed.image(REGION, { name: 'two-disks', snapshotIds: [own, shared] });
    twin.seed.image(REGION, { name: 'other-user', snapshotIds: [shared] });

    const result = await client.send(new DeregisterImageCommand({ ImageId: image, DeleteAssociatedSnapshots: true }));
    const gone = await failure(client.send(new DescribeImagesCommand({ ImageIds: [image] })));
    const { Snapshots } = await client.send(
      new DescribeSnapshotsCommand({ Filters: [{ Name: 'snapshot-id', Values: [own, shared] }] }),
    );

    expect(result.Return).toBe(true);
    expect(result.DeleteSnapshotResults).toEqual([
      { SnapshotId: own, ReturnCode: 'success' },
      { SnapshotId: shared, ReturnCode: 'skipped' },
    ]);
    expect(gone.name).toBe('InvalidAMIID.NotFound');
    expect(Snapshots?.map((s) => s.SnapshotId)).toEqual([shared]);
  });

  it('leaves snapshots alone without DeleteAssociatedSnapshots', async () => {
    const client = ec2(twin, REGION);
    const image = twin.seed.image(REGION, { name: 'keep-disks' });
    const snapshotId = twin.state.region(REGION).images.get(image)?.blockDeviceMappings[0]?.ebs?.snapshotId as string;
    const result = await client.send(new DeregisterImageCommand({ ImageId: image }));
    expect(result.DeleteSnapshotResults).toBeUndefined();
    expect((await client.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }))).Snapshots).toHaveLength(1);
  });

  it('refuses protected, Backup-managed, foreign and unknown images', async () => {
    const client = ec2(twin, REGION);
    const protectedImage = twin.seed.image(REGION, { name: 'protected', deregistrationProtection: true });
    const backup = twin.seed.image(REGION, { name: 'backup', imageOwnerAlias: 'aws-backup-vault' });
    const foreign = twin.seed.image(REGION, {
      name: 'foreign',
      ownerId: '111122223333',
      launchPermissions: [{ userId: twin.accountId }],
    });

    expect((await failure(client.send(new DeregisterImageCommand({ ImageId: protectedImage })))).name).toBe(
      'OperationNotPermitted',
    );
    expect((await failure(client.send(new DeregisterImageCommand({ ImageId: backup })))).name).toBe(
      'OperationNotPermitted',
    );
    expect((await failure(client.send(new DeregisterImageCommand({ ImageId: foreign })))).name).toBe('AuthFailure');
    expect((await failure(client.send(new DeregisterImageCommand({ ImageId: 'ami-0123456789abcdef0' })))).name).toBe(
      'InvalidAMIID.NotFound',
    );
    expect(twin.state.region(REGION).images.has(protectedImage)).toBe(true);
  });
});
