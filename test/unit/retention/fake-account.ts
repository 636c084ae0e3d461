import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  DescribeLaunchConfigurationsCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  DeregisterImageCommand,
  DescribeFleetsCommand,
  DescribeImageReferencesCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeSnapshotsCommand,
  DescribeSpotFleetRequestsCommand,
  EC2Client,
  EC2ServiceException,
  EnableImageDeprecationCommand,
  type Image,
} from '@aws-sdk/client-ec2';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import type { RetentionInventory } from '../../../lib/domain/retention-inventory.ts';

/**
 * A small in-memory account behind aws-sdk-client-mock: enough EC2 and S3 for a whole retention run (listing,
 * references, deregistering with snapshots, deprecating, bundles), recording every mutating call, so property
 * tests can run hundreds of runs without a server.
 */
export class FakeAccount {
  readonly images = new Map<string, Image>();
  readonly snapshots = new Map<string, number>();
  readonly references = new Map<string, string[]>();
  readonly objects = new Set<string>();
  readonly mutations: { action: string; id: string }[] = [];
  private readonly ec2 = mockClient(EC2Client);
  private readonly asg = mockClient(AutoScalingClient);
  private readonly s3 = mockClient(S3Client);

  constructor(inventory: RetentionInventory) {
    for (const i of inventory.images) {
      if (i.ownerId !== inventory.accountId || i.state === 'deregistered') continue; // DescribeImages Owners=self
      this.images.set(i.imageId, {
        ImageId: i.imageId,
        OwnerId: i.ownerId,
        Name: i.name,
        State: i.state,
        CreationDate: i.creationDate,
        DeprecationTime: i.deprecationTime,
        DeregistrationProtection: i.deregistrationProtection ? 'enabled-without-cooldown' : 'disabled',
        RootDeviceType: i.rootDeviceType,
        ImageLocation: i.imageLocation,
        BlockDeviceMappings: i.snapshots.map((s) => ({
          DeviceName: '/dev/xvda',
          Ebs: { SnapshotId: s.snapshotId, VolumeSize: s.volumeSizeGiB },
        })),
        Tags: Object.entries(i.tags).map(([Key, Value]) => ({ Key, Value })),
      });
      for (const s of i.snapshots) this.snapshots.set(s.snapshotId, s.volumeSizeGiB ?? 8);
      if (i.imageLocation) {
        const [bucket, ...key] = i.imageLocation.split('/');
        const prefix = key.slice(0, -1).join('/');
        for (const k of [key.join('/'), `${prefix}/image.part.00`, `${prefix}/image.part.01`])
          this.objects.add(`${bucket}/${k}`);
      }
    }
    for (const [id, refs] of inventory.references)
      this.references.set(
        id,
        refs.map((r) => r.id),
      );
    this.install();
  }

  restore(): void {
    this.ec2.restore();
    this.asg.restore();
    this.s3.restore();
  }

  private install(): void {
    const notFound = (id: string) =>
      new EC2ServiceException({
        name: 'InvalidAMIID.NotFound',
        $fault: 'client',
        $metadata: {},
        message: `The image id '[${id}]' does not exist`,
      });
    this.ec2.on(DescribeImagesCommand).callsFake((input: { NextToken?: string; MaxResults?: number }) => {
      const all = [...this.images.values()];
      const start = Number(input.NextToken ?? 0);
      const size = input.MaxResults ?? 1000;
      return {
        Images: all.slice(start, start + size),
        NextToken: start + size < all.length ? String(start + size) : undefined,
      };
    });
    this.ec2.on(DescribeSnapshotsCommand).callsFake(() => ({
      Snapshots: [...this.snapshots].map(([SnapshotId, VolumeSize]) => ({ SnapshotId, VolumeSize })),
    }));
    this.ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    this.ec2.on(DescribeLaunchTemplatesCommand).resolves({ LaunchTemplates: [] });
    this.ec2.on(DescribeFleetsCommand).resolves({ Fleets: [] });
    this.ec2.on(DescribeSpotFleetRequestsCommand).resolves({ SpotFleetRequestConfigs: [] });
    this.asg.on(DescribeAutoScalingGroupsCommand).resolves({ AutoScalingGroups: [] });
    this.asg.on(DescribeLaunchConfigurationsCommand).resolves({ LaunchConfigurations: [] });
    this.ec2.on(DescribeImageReferencesCommand).callsFake((input: { ImageIds?: string[] }) => ({
      ImageReferences: (input.ImageIds ?? []).flatMap((id) =>
        (this.references.get(id) ?? []).map((Arn) => ({
          ImageId: id,
          ResourceType: 'ec2:LaunchTemplate' as const,
          Arn,
        })),
      ),
    }));
    this.ec2.on(EnableImageDeprecationCommand).callsFake((input: { ImageId: string; DeprecateAt: Date }) => {
      this.mutations.push({ action: 'EnableImageDeprecation', id: input.ImageId });
      const image = this.images.get(input.ImageId);
      if (!image) throw notFound(input.ImageId);
      image.DeprecationTime = input.DeprecateAt.toISOString();
      return { Return: true };
    });
    this.ec2.on(DeregisterImageCommand).callsFake((input: { ImageId: string; DeleteAssociatedSnapshots?: boolean }) => {
      this.mutations.push({ action: 'DeregisterImage', id: input.ImageId });
      const image = this.images.get(input.ImageId);
      if (!image) throw notFound(input.ImageId);
      if (image.DeregistrationProtection !== 'disabled') {
        throw new EC2ServiceException({
          name: 'OperationNotPermitted',
          $fault: 'client',
          $metadata: {},
          message: 'protected',
        });
      }
      this.images.delete(input.ImageId);
      if (!input.DeleteAssociatedSnapshots) return { Return: true };
      const used = new Set(
        [...this.images.values()].flatMap((i) => (i.BlockDeviceMappings ?? []).map((b) => b.Ebs?.SnapshotId)),
      );
      return {
        Return: true,
        DeleteSnapshotResults: (image.BlockDeviceMappings ?? []).map((b) => {
          const id = b.Ebs?.SnapshotId ?? '';
          if (used.has(id)) return { SnapshotId: id, ReturnCode: 'skipped' as const };
          this.mutations.push({ action: 'DeleteSnapshot', id });
          this.snapshots.delete(id);
          return { SnapshotId: id, ReturnCode: 'success' as const };
        }),
      };
    });
    this.s3.on(GetObjectCommand).callsFake((input: { Bucket: string; Key: string }) => {
      const prefix = input.Key.split('/').slice(0, -1).join('/');
      const xml = `<manifest><image><parts count="2"><part index="0"><filename>image.part.00</filename></part><part index="1"><filename>image.part.01</filename></part></parts></image></manifest>`;
      if (!this.objects.has(`${input.Bucket}/${input.Key}`))
        throw Object.assign(new Error('NoSuchKey'), { name: 'NoSuchKey' });
      return { Body: { transformToString: async () => (prefix ? xml : xml) } as never };
    });
    this.s3.on(DeleteObjectsCommand).callsFake((input: { Bucket: string; Delete: { Objects: { Key: string }[] } }) => {
      for (const o of input.Delete.Objects) {
        this.mutations.push({ action: 'DeleteObject', id: `${input.Bucket}/${o.Key}` });
        this.objects.delete(`${input.Bucket}/${o.Key}`);
      }
      return { Deleted: input.Delete.Objects };
    });
    // The deletion journal's objects are kept (bookkeeping, not counted as mutations); nothing else is written.
    this.s3.on(PutObjectCommand).callsFake((input: { Bucket: string; Key: string }) => {
      if (!input.Key.startsWith('ami-dr/journal/')) throw new Error('no report bucket in these tests');
      this.objects.add(`${input.Bucket}/${input.Key}`);
      return {};
    });
    this.s3.on(DeleteObjectCommand).callsFake((input: { Bucket: string; Key: string }) => {
      this.objects.delete(`${input.Bucket}/${input.Key}`);
      return {};
    });
    this.s3.on(ListObjectsV2Command).callsFake((input: { Bucket: string; Prefix?: string }) => ({
      Contents: [...this.objects]
        .filter((o) => o.startsWith(`${input.Bucket}/${input.Prefix ?? ''}`))
        .map((o) => ({ Key: o.slice(input.Bucket.length + 1) })),
    }));
  }
}
