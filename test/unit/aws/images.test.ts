import { describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { listImages, toImageRecord } from '../../../lib/aws/images.ts';
import {
  createClients,
  defaultClients,
  ec2Client,
  kmsClient,
  s3Client,
  taskClients,
} from '../../../lib/aws/clients.ts';

describe('listImages', () => {
  it('follows every page and asks for deprecated and disabled images by default', async () => {
    const ec2 = mockClient(EC2Client);
    ec2
      .on(DescribeImagesCommand)
      .resolvesOnce({ Images: [{ ImageId: 'ami-1', State: 'available' }], NextToken: 'page-2' })
      .resolvesOnce({ Images: [{ ImageId: 'ami-2', State: 'pending' }] });
    const images = await listImages(new EC2Client({ region: 'us-east-1' }), 'us-east-1', {
      owners: ['self'],
      filters: { 'tag:Team': ['web'] },
    });
    expect(images.map((i) => i.imageId)).toEqual(['ami-1', 'ami-2']);
    expect(ec2).toHaveReceivedCommandTimes(DescribeImagesCommand, 2);
    expect(ec2).toHaveReceivedNthCommandWith(DescribeImagesCommand, 1, {
      Owners: ['self'],
      Filters: [{ Name: 'tag:Team', Values: ['web'] }],
      IncludeDeprecated: true,
      IncludeDisabled: true,
      MaxResults: 1000,
    });
    expect(ec2).toHaveReceivedNthCommandWith(DescribeImagesCommand, 2, { NextToken: 'page-2' });
    ec2.restore();
  });

  it('maps the SDK image into the record the planners read', () => {
    const record = toImageRecord(
      {
        ImageId: 'ami-0abc',
        OwnerId: '000000000000',
        Name: 'web-1.2.3',
        State: 'available',
        CreationDate: '2026-01-01T00:00:00.000Z',
        DeprecationTime: '2027-01-01T00:00:00.000Z',
        DeregistrationProtection: 'enabled-with-cooldown',
        RootDeviceType: 'ebs',
        BlockDeviceMappings: [
          { DeviceName: '/dev/xvda', Ebs: { SnapshotId: 'snap-1', VolumeSize: 8, Encrypted: true } },
          { DeviceName: '/dev/sdb', VirtualName: 'ephemeral0' },
        ],
        Tags: [{ Key: 'Team', Value: 'web' }],
        ProductCodes: [{ ProductCodeId: 'pc-1', ProductCodeType: 'marketplace' }],
        StateReason: { Code: 'x', Message: 'why' },
      },
      'us-east-1',
    );
    expect(record).toMatchObject({
      imageId: 'ami-0abc',
      region: 'us-east-1',
      deregistrationProtection: true,
      snapshots: [{ snapshotId: 'snap-1', volumeSizeGiB: 8, encrypted: true }],
      tags: { Team: 'web' },
      productCodes: ['pc-1'],
      stateReason: 'why',
    });
    expect(
      toImageRecord({ ImageId: 'ami-1', DeregistrationProtection: 'disabled' }, 'x').deregistrationProtection,
    ).toBe(false);
  });
});

describe('createClients', () => {
  it('makes one client per service and region and reuses it', async () => {
    const clients = createClients({ endpoint: 'http://127.0.0.1:1' });
    expect(ec2Client(clients, 'us-east-1')).toBe(ec2Client(clients, 'us-east-1'));
    expect(ec2Client(clients, 'us-east-1')).not.toBe(ec2Client(clients, 'us-west-2'));
    expect(await kmsClient(clients, 'eu-west-1').config.region()).toBe('eu-west-1');
    expect(await ec2Client(clients, 'us-east-1').config.retryStrategy()).toHaveProperty('mode', 'adaptive');
  });

  it("gives state machine tasks clients that try a call twice, leaving retries to the state machine's back-off", async () => {
    expect(await ec2Client(taskClients(), 'us-east-1').config.maxAttempts()).toBe(2);
    expect(await ec2Client(defaultClients(), 'us-east-1').config.maxAttempts()).toBe(8);
  });

  it('points S3 at its own endpoint with path-style addressing', async () => {
    const s3 = s3Client(
      createClients({ endpoint: 'http://127.0.0.1:1', s3Endpoint: 'http://127.0.0.1:2' }),
      'us-east-1',
    );
    expect(s3.config.forcePathStyle).toBe(true);
    expect((await s3.config.endpoint?.())?.port).toBe(2);
  });
});
