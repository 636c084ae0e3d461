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
import { ListRulesCommand, RbinClient } from '@aws-sdk/client-rbin';
import { mockClient } from 'aws-sdk-client-mock';
import type { RetentionInventory } from '../../../lib/domain/retention-inventory.ts';

/** One region of the fake account. */
export class FakeRegion {
  readonly images = new Map<string, Image>();
  readonly snapshots = new Map<string, number>();
  readonly references = new Map<string, string[]>();
  readonly objects = new Set<string>();
  /** Bodies of the objects written (the deletion journal's); other objects read as a two-part manifest. */
  readonly bodies = new Map<string, string>();

  constructor(inventory?: RetentionInventory) {
    if (inventory) this.add(inventory);
  }

  private add(inventory: RetentionInventory): void {
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
  }
}

/**
 * A small in-memory account behind aws-sdk-client-mock: enough EC2 and S3 for a whole retention run (listing,
 * references, deregistering with snapshots, deprecating, bundles), recording every mutating call, so property
 * tests can run hundreds of runs without a server. Built from one inventory, it answers every region alike; built
 * from several (one per region), each client sees its own region.
 */
export class FakeAccount {
  readonly regions = new Map<string, FakeRegion>();
  readonly mutations: { action: string; id: string; region: string }[] = [];
  private readonly shared: FakeRegion | undefined;
  private readonly ec2 = mockClient(EC2Client);
  private readonly asg = mockClient(AutoScalingClient);
  private readonly s3 = mockClient(S3Client);
  // client-rbin comes from an older SDK line than aws-sdk-client-mock's types: the mock works, its types do not line up.
  private readonly rbin = mockClient(RbinClient as never) as unknown as {
    on(command: unknown): { resolves(output: unknown): void };
    restore(): void;
  };

  constructor(inventory: RetentionInventory | readonly RetentionInventory[]) {
    if (Array.isArray(inventory)) {
      for (const i of inventory as readonly RetentionInventory[]) this.regions.set(i.region, new FakeRegion(i));
    } else {
      this.shared = new FakeRegion(inventory as RetentionInventory);
    }
    this.install();
  }

  /** The images of the single-inventory account (or of its first region). */
  get images(): Map<string, Image> {
    return (this.shared ?? ([...this.regions.values()][0] as FakeRegion)).images;
  }

  region(name: string): FakeRegion {
    if (this.shared) return this.shared;
    let r = this.regions.get(name);
    if (!r) this.regions.set(name, (r = new FakeRegion()));
    return r;
  }

  restore(): void {
    this.ec2.restore();
    this.asg.restore();
    this.s3.restore();
    this.rbin.restore();
  }

  private nameOf(r: FakeRegion): string {
    return this.shared ? '*' : ([...this.regions].find(([, v]) => v === r)?.[0] ?? '?');
  }

  private install(): void {
    // No Recycle Bin rules: what is deleted is freed at once.
    this.rbin.on(ListRulesCommand).resolves({ Rules: [] });
    const notFound = (id: string) =>
      new EC2ServiceException({
        name: 'InvalidAMIID.NotFound',
        $fault: 'client',
        $metadata: {},
        message: `The image id '[${id}]' does not exist`,
      });
    type Get = () => { config: { region: unknown } };
    const at = async (getClient: Get): Promise<FakeRegion> => {
      const region = getClient().config.region;
      return this.region(String(typeof region === 'function' ? await region() : region));
    };
    this.ec2
      .on(DescribeImagesCommand)
      .callsFake(async (input: { NextToken?: string; MaxResults?: number }, get: Get) => {
        const all = [...(await at(get)).images.values()];
        const start = Number(input.NextToken ?? 0);
        const size = input.MaxResults ?? 1000;
        return {
          Images: all.slice(start, start + size),
          NextToken: start + size < all.length ? String(start + size) : undefined,
        };
      });
    this.ec2.on(DescribeSnapshotsCommand).callsFake(async (_input: unknown, get: Get) => ({
      Snapshots: [...(await at(get)).snapshots].map(([SnapshotId, VolumeSize]) => ({ SnapshotId, VolumeSize })),
    }));
    this.ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    this.ec2.on(DescribeLaunchTemplatesCommand).resolves({ LaunchTemplates: [] });
    this.ec2.on(DescribeFleetsCommand).resolves({ Fleets: [] });
    this.ec2.on(DescribeSpotFleetRequestsCommand).resolves({ SpotFleetRequestConfigs: [] });
    this.asg.on(DescribeAutoScalingGroupsCommand).resolves({ AutoScalingGroups: [] });
    this.asg.on(DescribeLaunchConfigurationsCommand).resolves({ LaunchConfigurations: [] });
    this.ec2.on(DescribeImageReferencesCommand).callsFake(async (input: { ImageIds?: string[] }, get: Get) => {
      const { references } = await at(get);
      return {
        ImageReferences: (input.ImageIds ?? []).flatMap((id) =>
          (references.get(id) ?? []).map((Arn) => ({
            ImageId: id,
            ResourceType: 'ec2:LaunchTemplate' as const,
            Arn,
          })),
        ),
      };
    });
    this.ec2
      .on(EnableImageDeprecationCommand)
      .callsFake(async (input: { ImageId: string; DeprecateAt: Date }, get: Get) => {
        const r = await at(get);
        this.mutations.push({ action: 'EnableImageDeprecation', id: input.ImageId, region: this.nameOf(r) });
        const image = r.images.get(input.ImageId);
        if (!image) throw notFound(input.ImageId);
        image.DeprecationTime = input.DeprecateAt.toISOString();
        return { Return: true };
      });
    this.ec2
      .on(DeregisterImageCommand)
      .callsFake(async (input: { ImageId: string; DeleteAssociatedSnapshots?: boolean }, get: Get) => {
        const r = await at(get);
        const region = this.nameOf(r);
        this.mutations.push({ action: 'DeregisterImage', id: input.ImageId, region });
        const image = r.images.get(input.ImageId);
        if (!image) throw notFound(input.ImageId);
        if (image.DeregistrationProtection !== 'disabled') {
          throw new EC2ServiceException({
            name: 'OperationNotPermitted',
            $fault: 'client',
            $metadata: {},
            message: 'protected',
          });
        }
        r.images.delete(input.ImageId);
        if (!input.DeleteAssociatedSnapshots) return { Return: true };
        const used = new Set(
          [...r.images.values()].flatMap((i) => (i.BlockDeviceMappings ?? []).map((b) => b.Ebs?.SnapshotId)),
        );
        return {
          Return: true,
          DeleteSnapshotResults: (image.BlockDeviceMappings ?? []).map((b) => {
            const id = b.Ebs?.SnapshotId ?? '';
            if (used.has(id)) return { SnapshotId: id, ReturnCode: 'skipped' as const };
            this.mutations.push({ action: 'DeleteSnapshot', id, region });
            r.snapshots.delete(id);
            return { SnapshotId: id, ReturnCode: 'success' as const };
          }),
        };
      });
    this.s3.on(GetObjectCommand).callsFake(async (input: { Bucket: string; Key: string }, get: Get) => {
      const r = await at(get);
      const prefix = input.Key.split('/').slice(0, -1).join('/');
      const xml = `<manifest><image><parts count="2"><part index="0"><filename>image.part.00</filename></part><part index="1"><filename>image.part.01</filename></part></parts></image></manifest>`;
      const id = `${input.Bucket}/${input.Key}`;
      if (!r.objects.has(id)) throw Object.assign(new Error('NoSuchKey'), { name: 'NoSuchKey' });
      const body = r.bodies.get(id) ?? (prefix ? xml : xml);
      return { Body: { transformToString: async () => body } as never };
    });
    this.s3
      .on(DeleteObjectsCommand)
      .callsFake(async (input: { Bucket: string; Delete: { Objects: { Key: string }[] } }, get: Get) => {
        const r = await at(get);
        for (const o of input.Delete.Objects) {
          this.mutations.push({ action: 'DeleteObject', id: `${input.Bucket}/${o.Key}`, region: this.nameOf(r) });
          r.objects.delete(`${input.Bucket}/${o.Key}`);
        }
        return { Deleted: input.Delete.Objects };
      });
    // The deletion journal's objects are kept (bookkeeping, not counted as mutations); nothing else is written.
    this.s3.on(PutObjectCommand).callsFake(async (input: { Bucket: string; Key: string; Body?: unknown }, get: Get) => {
      if (!input.Key.startsWith('ami-dr/journal/')) throw new Error('no report bucket in these tests');
      const r = await at(get);
      r.objects.add(`${input.Bucket}/${input.Key}`);
      r.bodies.set(`${input.Bucket}/${input.Key}`, String(input.Body));
      return {};
    });
    this.s3.on(DeleteObjectCommand).callsFake(async (input: { Bucket: string; Key: string }, get: Get) => {
      const r = await at(get);
      r.objects.delete(`${input.Bucket}/${input.Key}`);
      r.bodies.delete(`${input.Bucket}/${input.Key}`);
      return {};
    });
    this.s3.on(ListObjectsV2Command).callsFake(async (input: { Bucket: string; Prefix?: string }, get: Get) => ({
      Contents: [...(await at(get)).objects]
        .filter((o) => o.startsWith(`${input.Bucket}/${input.Prefix ?? ''}`))
        .map((o) => ({ Key: o.slice(input.Bucket.length + 1) })),
    }));
  }
}
