import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  DescribeLaunchConfigurationsCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  DescribeFleetsCommand,
  DescribeImageReferencesCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeLaunchTemplateVersionsCommand,
  DescribeSnapshotsCommand,
  DescribeSpotFleetRequestsCommand,
  EC2Client,
  EC2ServiceException,
  type Image,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { GetRuleCommand, ListRulesCommand, RbinClient } from '@aws-sdk/client-rbin';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { createClients } from '../../../lib/aws/clients.ts';
import { addImageReferences, collectInventory } from '../../../lib/aws/inventory.ts';
import { TAG } from '../../../lib/domain/tags.ts';
import { ACCOUNT } from './fixtures.ts';

const ec2 = mockClient(EC2Client);
const asg = mockClient(AutoScalingClient);
// client-rbin comes from an older SDK line than aws-sdk-client-mock types: the mock works, its types do not line up.
interface LooseStub {
  reset(): void;
  on(command: unknown, input?: unknown): { resolves(output: unknown): void; rejects(error: unknown): void };
}
const rbin = mockClient(RbinClient as never) as unknown as LooseStub;
const clients = () => createClients({ maxAttempts: 1 });

const ec2Error = (name: string) => new EC2ServiceException({ name, $fault: 'client', $metadata: {}, message: name });
const img = (id: string, extra: Partial<Image> = {}): Image => ({
  ImageId: id,
  OwnerId: ACCOUNT,
  Name: id,
  State: 'available',
  CreationDate: '2025-01-01T00:00:00.000Z',
  ...extra,
});

beforeEach(() => {
  ec2.reset();
  asg.reset();
  rbin.reset();
  rbin.on(ListRulesCommand).resolves({ Rules: [] });
  ec2.on(DescribeImagesCommand).resolves({ Images: [] });
  ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
  ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
  ec2.on(DescribeLaunchTemplatesCommand).resolves({ LaunchTemplates: [] });
  ec2.on(DescribeFleetsCommand).resolves({ Fleets: [] });
  ec2.on(DescribeSpotFleetRequestsCommand).resolves({ SpotFleetRequestConfigs: [] });
  asg.on(DescribeAutoScalingGroupsCommand).resolves({ AutoScalingGroups: [] });
  asg.on(DescribeLaunchConfigurationsCommand).resolves({ LaunchConfigurations: [] });
});

describe('collectInventory: Recycle Bin rules', () => {
  it('reads each rule of both resource types with its resource tags and retention period', async () => {
    rbin.on(ListRulesCommand, { ResourceType: 'EBS_SNAPSHOT' }).resolves({ Rules: [{ Identifier: 'snap7' }] });
    rbin.on(GetRuleCommand, { Identifier: 'snap7' }).resolves({
      Identifier: 'snap7',
      ResourceType: 'EBS_SNAPSHOT',
      RetentionPeriod: { RetentionPeriodValue: 7, RetentionPeriodUnit: 'DAYS' },
      ResourceTags: [{ ResourceTagKey: 'Team', ResourceTagValue: 'web' }],
      Status: 'available',
    });
    const inv = await collectInventory(clients(), { region: 'us-east-1', accountId: ACCOUNT });
    expect(inv.recycleBinRules).toEqual([
      {
        id: 'snap7',
        resourceType: 'EBS_SNAPSHOT',
        retentionDays: 7,
        resourceTags: [{ key: 'Team', value: 'web' }],
        excludeTags: [],
      },
    ]);
    expect(rbin as never).toHaveReceivedCommandWith(ListRulesCommand as never, { ResourceType: 'EC2_IMAGE' } as never);
  });

  it('warns, and assumes no rule, when the rules cannot be read', async () => {
    rbin.on(ListRulesCommand).rejects(Object.assign(new Error('not allowed'), { name: 'AccessDeniedException' }));
    const inv = await collectInventory(clients(), { region: 'us-east-1', accountId: ACCOUNT });
    expect(inv.recycleBinRules).toEqual([]);
    expect(inv.warnings).toEqual([
      expect.stringMatching(/^Recycle Bin rules of us-east-1 could not be read \(AccessDeniedException/),
    ]);
  });
});

describe('collectInventory', () => {
  it('lists every owned image, deprecated and disabled too, and snapshot sizes, page by page', async () => {
    ec2
      .on(DescribeImagesCommand)
      .resolvesOnce({ Images: [img('ami-1')], NextToken: 't1' })
      .resolvesOnce({ Images: [img('ami-2', { State: 'disabled' })] });
    ec2
      .on(DescribeSnapshotsCommand)
      .resolvesOnce({ Snapshots: [{ SnapshotId: 'snap-1', VolumeSize: 8 }], NextToken: 's1' })
      .resolvesOnce({ Snapshots: [{ SnapshotId: 'snap-2', VolumeSize: 30 }] });
    const inv = await collectInventory(clients(), { region: 'us-east-1', accountId: ACCOUNT });
    expect(inv.images.map((i) => i.imageId)).toEqual(['ami-1', 'ami-2']);
    expect(ec2).toHaveReceivedCommandWith(DescribeImagesCommand, {
      Owners: ['self'],
      IncludeDeprecated: true,
      IncludeDisabled: true,
    });
    expect(ec2).toHaveReceivedCommandTimes(DescribeImagesCommand, 2);
    expect(ec2).toHaveReceivedCommandWith(DescribeSnapshotsCommand, { OwnerIds: ['self'], MaxResults: 1000 });
    expect([...inv.snapshotSizes]).toEqual([
      ['snap-1', 8],
      ['snap-2', 30],
    ]);
    expect(inv.imageReferences).toBe('not-checked');
  });

  it('counts instances in every state but terminated', async () => {
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        {
          Instances: [
            { InstanceId: 'i-1', ImageId: 'ami-1' },
            { InstanceId: 'i-2', ImageId: 'ami-1' },
          ],
        },
      ],
    });
    const inv = await collectInventory(clients(), { region: 'us-east-1', accountId: ACCOUNT });
    expect(ec2).toHaveReceivedCommandWith(DescribeInstancesCommand, {
      Filters: [
        { Name: 'instance-state-name', Values: ['pending', 'running', 'shutting-down', 'stopping', 'stopped'] },
      ],
    });
    expect(inv.references.get('ami-1')).toEqual([
      { kind: 'instance', id: 'i-1' },
      { kind: 'instance', id: 'i-2' },
    ]);
  });

  it("reads each template's $Default and $Latest, and every version an ASG names (by id or name, mixed-instances overrides too)", async () => {
    ec2.on(DescribeLaunchTemplatesCommand).resolves({
      LaunchTemplates: [
        { LaunchTemplateId: 'lt-a', LaunchTemplateName: 'web', DefaultVersionNumber: 1, LatestVersionNumber: 5 },
        { LaunchTemplateId: 'lt-b', LaunchTemplateName: 'api', DefaultVersionNumber: 2, LatestVersionNumber: 2 },
      ],
    });
    asg.on(DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: [
        {
          AutoScalingGroupName: 'web-asg',
          MixedInstancesPolicy: {
            LaunchTemplate: {
              LaunchTemplateSpecification: { LaunchTemplateName: 'web', Version: '3' },
              Overrides: [
                { InstanceType: 'm5.large', LaunchTemplateSpecification: { LaunchTemplateId: 'lt-b', Version: '1' } },
              ],
            },
          },
        } as never,
      ],
    });
    ec2.on(DescribeLaunchTemplateVersionsCommand, { LaunchTemplateId: 'lt-a' }).resolves({
      LaunchTemplateVersions: [
        { VersionNumber: 1, DefaultVersion: true, LaunchTemplateData: { ImageId: 'ami-default' } },
        { VersionNumber: 5, LaunchTemplateData: { ImageId: 'ami-latest' } },
        { VersionNumber: 3, LaunchTemplateData: { ImageId: 'ami-v3' } },
      ],
    });
    ec2.on(DescribeLaunchTemplateVersionsCommand, { LaunchTemplateId: 'lt-b' }).resolves({
      LaunchTemplateVersions: [
        { VersionNumber: 2, DefaultVersion: true, LaunchTemplateData: { ImageId: 'ami-b2' } },
        { VersionNumber: 1, LaunchTemplateData: { ImageId: 'ami-b1' } },
      ],
    });
    const inv = await collectInventory(clients(), { region: 'us-east-1', accountId: ACCOUNT });
    expect(ec2).toHaveReceivedCommandWith(DescribeLaunchTemplateVersionsCommand, {
      LaunchTemplateId: 'lt-a',
      Versions: ['$Default', '$Latest', '3'],
    });
    expect(ec2).toHaveReceivedCommandWith(DescribeLaunchTemplateVersionsCommand, {
      LaunchTemplateId: 'lt-b',
      Versions: ['$Default', '$Latest', '1'],
    });
    expect(inv.references.get('ami-default')).toEqual([{ kind: 'launch-template', id: 'lt-a:$Default(1)' }]);
    expect(inv.references.get('ami-latest')).toEqual([{ kind: 'launch-template', id: 'lt-a:$Latest(5)' }]);
    expect(inv.references.get('ami-v3')).toEqual([
      { kind: 'launch-template', id: 'lt-a:3' },
      { kind: 'auto-scaling-group', id: 'web-asg (lt-a:3)' },
    ]);
    expect(inv.references.get('ami-b1')).toContainEqual({ kind: 'auto-scaling-group', id: 'web-asg (lt-b:1)' });
    expect(inv.references.get('ami-b2')?.map((r) => r.id)).toEqual(['lt-b:$Default(2)', 'lt-b:$Latest(2)']);
  });

  /** Template lt-a: versions 1 ($Default), 3 and 20 ($Latest) exist; version 9 was deleted, so asking for it fails the whole call. */
  const versionsWithNineDeleted = () => {
    const version = (n: number, imageId: string) => ({ VersionNumber: n, LaunchTemplateData: { ImageId: imageId } });
    ec2
      .on(DescribeLaunchTemplateVersionsCommand, { Versions: ['$Default', '$Latest', '3', '9'] })
      .rejects(ec2Error('InvalidLaunchTemplateId.VersionNotFound'));
    ec2
      .on(DescribeLaunchTemplateVersionsCommand, { Versions: ['$Default', '$Latest'] })
      .resolves({ LaunchTemplateVersions: [version(1, 'ami-default'), version(20, 'ami-latest')] });
    ec2
      .on(DescribeLaunchTemplateVersionsCommand, { Versions: ['3'] })
      .resolves({ LaunchTemplateVersions: [version(3, 'ami-v3')] });
    ec2
      .on(DescribeLaunchTemplateVersionsCommand, { Versions: ['9'] })
      .rejects(ec2Error('InvalidLaunchTemplateId.VersionNotFound'));
  };

  it('still counts the versions other ASGs name when one ASG names a version that is gone', async () => {
    ec2.on(DescribeLaunchTemplatesCommand).resolves({
      LaunchTemplates: [
        { LaunchTemplateId: 'lt-a', LaunchTemplateName: 'web', DefaultVersionNumber: 1, LatestVersionNumber: 20 },
      ],
    });
    asg.on(DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: [
        { AutoScalingGroupName: 'live', LaunchTemplate: { LaunchTemplateId: 'lt-a', Version: '3' } } as never,
        { AutoScalingGroupName: 'stale', LaunchTemplate: { LaunchTemplateId: 'lt-a', Version: '9' } } as never,
      ],
    });
    versionsWithNineDeleted();
    const inv = await collectInventory(clients(), { region: 'us-east-1', accountId: ACCOUNT });
    expect(inv.references.get('ami-v3')).toEqual([
      { kind: 'launch-template', id: 'lt-a:3' },
      { kind: 'auto-scaling-group', id: 'live (lt-a:3)' },
    ]);
    expect(inv.references.get('ami-default')?.[0]).toEqual({ kind: 'launch-template', id: 'lt-a:$Default(1)' });
    expect(inv.references.get('ami-latest')?.[0]).toEqual({ kind: 'launch-template', id: 'lt-a:$Latest(20)' });
    expect(inv.warnings.join()).toMatch(/lt-a: a version an ASG or fleet names \(9\) was not found/);
  });

  it('reads every version a live EC2 Fleet or Spot Fleet request names, page by page, and images they name directly', async () => {
    ec2.on(DescribeLaunchTemplatesCommand).resolves({
      LaunchTemplates: [
        { LaunchTemplateId: 'lt-a', LaunchTemplateName: 'web', DefaultVersionNumber: 1, LatestVersionNumber: 9 },
      ],
    });
    const fleetConfig = (spec: Record<string, string>) => ({
      LaunchTemplateConfigs: [{ LaunchTemplateSpecification: spec }],
    });
    ec2.on(DescribeFleetsCommand).resolves({
      Fleets: [
        { FleetId: 'fleet-1', FleetState: 'active', ...fleetConfig({ LaunchTemplateId: 'lt-a', Version: '3' }) },
      ],
      NextToken: 'p2',
    });
    ec2.on(DescribeFleetsCommand, { NextToken: 'p2' }).resolves({
      Fleets: [
        {
          FleetId: 'fleet-2',
          FleetState: 'deleted_running',
          LaunchTemplateConfigs: [
            {
              LaunchTemplateSpecification: { LaunchTemplateName: 'web', Version: '$Latest' },
              Overrides: [{ InstanceType: 'm7g.large', ImageId: 'ami-override' }],
            },
          ],
        },
      ],
    });
    const request = (id: string, state: string, config: Record<string, unknown>) => ({
      SpotFleetRequestId: id,
      SpotFleetRequestState: state,
      SpotFleetRequestConfig: { IamFleetRole: 'r', TargetCapacity: 1, ...config },
    });
    ec2.on(DescribeSpotFleetRequestsCommand).resolves({
      SpotFleetRequestConfigs: [
        request('sfr-live', 'cancelled_running', fleetConfig({ LaunchTemplateName: 'web', Version: '4' })),
      ] as never,
      NextToken: 'p2',
    });
    ec2.on(DescribeSpotFleetRequestsCommand, { NextToken: 'p2' }).resolves({
      SpotFleetRequestConfigs: [
        request('sfr-gone', 'cancelled_terminating', fleetConfig({ LaunchTemplateId: 'lt-a', Version: '6' })),
        request('sfr-spec', 'active', { LaunchSpecifications: [{ ImageId: 'ami-spec' }] }),
      ] as never,
    });
    ec2.on(DescribeLaunchTemplateVersionsCommand).resolves({
      LaunchTemplateVersions: [1, 9, 3, 4].map((n) => ({
        VersionNumber: n,
        LaunchTemplateData: { ImageId: `ami-v${n}` },
      })),
    });
    const inv = await collectInventory(clients(), { region: 'us-east-1', accountId: ACCOUNT });
    // Fleets that can no longer launch are not asked for; spot fleet requests are sorted out by state here.
    expect(ec2).toHaveReceivedCommandWith(DescribeFleetsCommand, {
      Filters: [{ Name: 'fleet-state', Values: ['submitted', 'active', 'modifying', 'deleted_running'] }],
    });
    expect(ec2).toHaveReceivedCommandTimes(DescribeSpotFleetRequestsCommand, 2);
    expect(ec2).toHaveReceivedCommandWith(DescribeLaunchTemplateVersionsCommand, {
      LaunchTemplateId: 'lt-a',
      Versions: ['$Default', '$Latest', '3', '4'],
    });
    expect(inv.references.get('ami-v3')).toEqual([
      { kind: 'launch-template', id: 'lt-a:3' },
      { kind: 'fleet', id: 'fleet-1 (lt-a:3)' },
    ]);
    expect(inv.references.get('ami-v9')).toContainEqual({ kind: 'fleet', id: 'fleet-2 (lt-a:$Latest)' });
    expect(inv.references.get('ami-v4')).toContainEqual({ kind: 'spot-fleet', id: 'sfr-live (lt-a:4)' });
    expect(inv.references.get('ami-override')).toEqual([{ kind: 'fleet', id: 'fleet-2 (override)' }]);
    expect(inv.references.get('ami-spec')).toEqual([{ kind: 'spot-fleet', id: 'sfr-spec (launch specification)' }]);
    expect(inv.references.has('ami-v6')).toBe(false);
  });

  it('still counts the versions ASGs name when a fleet names a version that is gone', async () => {
    ec2.on(DescribeLaunchTemplatesCommand).resolves({
      LaunchTemplates: [
        { LaunchTemplateId: 'lt-a', LaunchTemplateName: 'web', DefaultVersionNumber: 1, LatestVersionNumber: 20 },
      ],
    });
    asg.on(DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: [
        { AutoScalingGroupName: 'live', LaunchTemplate: { LaunchTemplateId: 'lt-a', Version: '3' } } as never,
      ],
    });
    ec2.on(DescribeFleetsCommand).resolves({
      Fleets: [
        {
          FleetId: 'fleet-1',
          LaunchTemplateConfigs: [{ LaunchTemplateSpecification: { LaunchTemplateId: 'lt-a', Version: '9' } }],
        },
      ],
    });
    versionsWithNineDeleted();
    const inv = await collectInventory(clients(), { region: 'us-east-1', accountId: ACCOUNT });
    expect(inv.references.get('ami-v3')).toContainEqual({ kind: 'auto-scaling-group', id: 'live (lt-a:3)' });
    expect(inv.warnings.join()).toMatch(/lt-a: a version an ASG or fleet names \(9\) was not found/);
  });

  it('counts every launch configuration, in an ASG or not, and ASGs using one', async () => {
    asg.on(DescribeLaunchConfigurationsCommand).resolves({
      LaunchConfigurations: [
        { LaunchConfigurationName: 'lc-used', ImageId: 'ami-1' } as never,
        { LaunchConfigurationName: 'lc-idle', ImageId: 'ami-2' } as never,
      ],
    });
    asg
      .on(DescribeAutoScalingGroupsCommand)
      .resolves({ AutoScalingGroups: [{ AutoScalingGroupName: 'g', LaunchConfigurationName: 'lc-used' } as never] });
    const inv = await collectInventory(clients(), { region: 'us-east-1', accountId: ACCOUNT });
    expect(inv.references.get('ami-1')).toEqual([
      { kind: 'launch-configuration', id: 'lc-used' },
      { kind: 'auto-scaling-group', id: 'g (launch configuration lc-used)' },
    ]);
    expect(inv.references.get('ami-2')).toEqual([{ kind: 'launch-configuration', id: 'lc-idle' }]);
  });

  it('warns about templates that name their image by SSM parameter', async () => {
    ec2
      .on(DescribeLaunchTemplatesCommand)
      .resolves({ LaunchTemplates: [{ LaunchTemplateId: 'lt-s', DefaultVersionNumber: 1, LatestVersionNumber: 1 }] });
    ec2.on(DescribeLaunchTemplateVersionsCommand).resolves({
      LaunchTemplateVersions: [
        { VersionNumber: 1, DefaultVersion: true, LaunchTemplateData: { ImageId: 'resolve:ssm:/golden/ami' } },
      ],
    });
    const inv = await collectInventory(clients(), { region: 'us-east-1', accountId: ACCOUNT });
    expect(inv.warnings[0]).toMatch(
      /lt-s:\$Default\(1\) names its image by SSM parameter \(resolve:ssm:\/golden\/ami\)/,
    );
  });

  it('skips the in-use scans when protectInUse is off', async () => {
    await collectInventory(clients(), { region: 'us-east-1', accountId: ACCOUNT, protectInUse: false });
    expect(ec2).not.toHaveReceivedCommand(DescribeInstancesCommand);
    expect(asg).not.toHaveReceivedCommand(DescribeAutoScalingGroupsCommand);
    expect(ec2).not.toHaveReceivedCommand(DescribeFleetsCommand);
    expect(ec2).not.toHaveReceivedCommand(DescribeSpotFleetRequestsCommand);
  });

  it("lists replicas' source regions once each to find which sources live", async () => {
    const replica = (id: string, src: string, region: string) =>
      img(id, {
        Tags: [
          { Key: TAG.role, Value: 'replica' },
          { Key: TAG.sourceImageId, Value: src },
          { Key: TAG.sourceRegion, Value: region },
        ],
      });
    ec2
      .on(DescribeImagesCommand)
      .resolves({ Images: [replica('ami-r1', 'ami-s1', 'us-east-1'), replica('ami-r2', 'ami-s2', 'us-east-1')] });
    const inv = await collectInventory(clients(), { region: 'us-west-2', accountId: ACCOUNT });
    // The DR region's own listing, then us-east-1's: two calls, however many replicas.
    expect(ec2).toHaveReceivedCommandTimes(DescribeImagesCommand, 2);
    expect(inv.sources?.checkedRegions).toEqual(['us-east-1']);
  });
});

describe('addImageReferences', () => {
  const base = {
    region: 'us-east-1',
    accountId: ACCOUNT,
    images: [],
    snapshotSizes: new Map(),
    references: new Map(),
    imageReferences: 'not-checked' as const,
    warnings: [],
  };

  it('asks about 10 images per call, following pages', async () => {
    const ids = Array.from({ length: 23 }, (_, i) => `ami-${i}`);
    ec2.on(DescribeImageReferencesCommand).resolves({ ImageReferences: [] });
    ec2
      .on(DescribeImageReferencesCommand, { ImageIds: ids.slice(0, 10) })
      .resolvesOnce({
        ImageReferences: [
          { ImageId: 'ami-3', ResourceType: 'ssm:Parameter', Arn: 'arn:aws:ssm:us-east-1:1:parameter/golden' },
        ],
        NextToken: 'n',
      })
      .resolvesOnce({
        ImageReferences: [
          { ImageId: 'ami-3', ResourceType: 'ec2:Instance', Arn: 'arn:aws:ec2:us-east-1:1:instance/i-1' },
        ],
      });
    const inv = await addImageReferences(new EC2Client({}), base, ids);
    expect(ec2).toHaveReceivedCommandTimes(DescribeImageReferencesCommand, 4);
    expect(ec2).toHaveReceivedCommandWith(DescribeImageReferencesCommand, {
      ImageIds: ids.slice(20),
      IncludeAllResourceTypes: true,
    });
    expect(inv.references.get('ami-3')?.map((r) => r.id)).toEqual([
      'arn:aws:ssm:us-east-1:1:parameter/golden',
      'arn:aws:ec2:us-east-1:1:instance/i-1',
    ]);
    expect(inv.imageReferences).toBe('checked');
  });

  it.each(['InvalidAction', 'UnsupportedOperation'])(
    'falls back to the scans, and says so, when the region answers %s',
    async (code) => {
      ec2.on(DescribeImageReferencesCommand).rejects(ec2Error(code));
      const inv = await addImageReferences(
        new EC2Client({}),
        base,
        Array.from({ length: 30 }, (_, i) => `ami-${i}`),
      );
      expect(ec2).toHaveReceivedCommandTimes(DescribeImageReferencesCommand, 1);
      expect(inv.imageReferences).toBe('unavailable');
      expect(inv.warnings[0]).toMatch(
        new RegExp(`DescribeImageReferences is not available in us-east-1 \\(${code}\\)`),
      );
    },
  );

  it('lets other errors through', async () => {
    ec2.on(DescribeImageReferencesCommand).rejects(ec2Error('UnauthorizedOperation'));
    await expect(addImageReferences(new EC2Client({}), base, ['ami-1'])).rejects.toThrow('UnauthorizedOperation');
  });
});
