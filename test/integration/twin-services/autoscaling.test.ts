import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DescribeAutoScalingGroupsCommand,
  DescribeLaunchConfigurationsCommand,
  paginateDescribeAutoScalingGroups,
  paginateDescribeLaunchConfigurations,
  type AutoScalingClient,
} from '@aws-sdk/client-auto-scaling';
import { startHarness, type Harness } from './harness.ts';
import { errorName } from './errors.ts';
import { autoScalingClient } from '../../../lib/aws/clients.ts';

describe('twin Auto Scaling', () => {
  let twin: Harness;
  let asg: AutoScalingClient;
  let templateId: string;
  let overrideTemplateId: string;
  beforeAll(async () => {
    twin = await startHarness();
    asg = autoScalingClient(twin.clients, 'us-east-1');
    templateId = twin.seed.launchTemplate('us-east-1', {
      name: 'web',
      versions: [{ imageId: 'ami-00000000000000001' }],
    });
    overrideTemplateId = twin.seed.launchTemplate('us-east-1', {
      name: 'web-arm',
      versions: [{ imageId: 'ami-00000000000000002' }],
    });
    twin.seed.launchConfiguration('us-east-1', { name: 'legacy-lc', imageId: 'ami-00000000000000003' });
    twin.seed.autoScalingGroup('us-east-1', {
      name: 'by-template',
      launchTemplate: { launchTemplateName: 'web', version: '$Latest' },
      tags: { team: 'web' },
    });
    twin.seed.autoScalingGroup('us-east-1', {
      name: 'mixed',
      mixedInstancesPolicy: {
        launchTemplate: {
          launchTemplateSpecification: { launchTemplateId: templateId },
          overrides: [
            {
              instanceType: 'm7g.large',
              launchTemplateSpecification: { launchTemplateId: overrideTemplateId, version: '1' },
            },
            { instanceType: 'm7i.large' },
          ],
        },
      },
    });
    twin.seed.autoScalingGroup('us-east-1', {
      name: 'by-config',
      launchConfigurationName: 'legacy-lc',
      minSize: 1,
      maxSize: 3,
      desiredCapacity: 2,
    });
  });
  afterAll(async () => {
    await twin.stop();
  });

  it('DescribeAutoScalingGroups reports launch templates with id, name and version', async () => {
    const { AutoScalingGroups: groups } = await asg.send(
      new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ['by-template'] }),
    );
    expect(groups).toHaveLength(1);
    expect(groups?.[0]?.AutoScalingGroupARN).toMatch(
      /^arn:aws:autoscaling:us-east-1:000000000000:autoScalingGroup:[0-9a-f-]{36}:autoScalingGroupName\/by-template$/,
    );
    expect(groups?.[0]?.LaunchTemplate).toEqual({
      LaunchTemplateId: templateId,
      LaunchTemplateName: 'web',
      Version: '$Latest',
    });
    expect(groups?.[0]?.Tags?.[0]).toMatchObject({ Key: 'team', Value: 'web', ResourceId: 'by-template' });
  });

  it('DescribeAutoScalingGroups reports mixed-instances policies and their overrides', async () => {
    const { AutoScalingGroups: groups } = await asg.send(
      new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ['mixed'] }),
    );
    const policy = groups?.[0]?.MixedInstancesPolicy?.LaunchTemplate;
    expect(policy?.LaunchTemplateSpecification).toEqual({
      LaunchTemplateId: templateId,
      LaunchTemplateName: 'web',
      Version: '$Default',
    });
    expect(policy?.Overrides).toEqual([
      {
        InstanceType: 'm7g.large',
        LaunchTemplateSpecification: {
          LaunchTemplateId: overrideTemplateId,
          LaunchTemplateName: 'web-arm',
          Version: '1',
        },
      },
      { InstanceType: 'm7i.large' },
    ]);
    expect(groups?.[0]?.LaunchTemplate).toBeUndefined();
  });

  it('DescribeAutoScalingGroups reports launch configuration names and sizes', async () => {
    const { AutoScalingGroups: groups } = await asg.send(
      new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ['by-config'] }),
    );
    expect(groups?.[0]).toMatchObject({
      LaunchConfigurationName: 'legacy-lc',
      MinSize: 1,
      MaxSize: 3,
      DesiredCapacity: 2,
    });
    expect(groups?.[0]?.CreatedTime).toEqual(new Date(twin.clock.now()));
  });

  it('DescribeAutoScalingGroups filters by tag', async () => {
    const { AutoScalingGroups: groups } = await asg.send(
      new DescribeAutoScalingGroupsCommand({ Filters: [{ Name: 'tag:team', Values: ['web'] }] }),
    );
    expect(groups?.map((g) => g.AutoScalingGroupName)).toEqual(['by-template']);
  });

  it('DescribeLaunchConfigurations reports the image', async () => {
    const { LaunchConfigurations: configs } = await asg.send(
      new DescribeLaunchConfigurationsCommand({ LaunchConfigurationNames: ['legacy-lc'] }),
    );
    expect(configs).toHaveLength(1);
    expect(configs?.[0]).toMatchObject({
      LaunchConfigurationName: 'legacy-lc',
      ImageId: 'ami-00000000000000003',
      InstanceType: 't3.micro',
    });
    expect(configs?.[0]?.LaunchConfigurationARN).toContain(':launchConfigurationName/legacy-lc');
  });

  it('both listings page with MaxRecords/NextToken, and are regional', async () => {
    const region = 'eu-central-1';
    for (let i = 0; i < 23; i++) {
      twin.seed.launchConfiguration(region, {
        name: `lc-${String(i).padStart(2, '0')}`,
        imageId: `ami-${String(i).padStart(17, '0')}`,
      });
      twin.seed.autoScalingGroup(region, {
        name: `asg-${String(i).padStart(2, '0')}`,
        launchConfigurationName: `lc-${String(i).padStart(2, '0')}`,
      });
    }
    const client = autoScalingClient(twin.clients, region);
    const first = await client.send(new DescribeAutoScalingGroupsCommand({ MaxRecords: 10 }));
    expect(first.AutoScalingGroups).toHaveLength(10);
    expect(first.NextToken).toBeTruthy();
    const groups: string[] = [];
    for await (const p of paginateDescribeAutoScalingGroups({ client, pageSize: 10 }, {}))
      groups.push(...(p.AutoScalingGroups ?? []).map((g) => g.AutoScalingGroupName ?? ''));
    expect(groups).toHaveLength(23);
    expect(new Set(groups).size).toBe(23);
    const configs: string[] = [];
    for await (const p of paginateDescribeLaunchConfigurations({ client, pageSize: 7 }, {}))
      configs.push(...(p.LaunchConfigurations ?? []).map((c) => c.ImageId ?? ''));
    expect(configs).toHaveLength(23);
    expect(new Set(configs).size).toBe(23);
  });

  it('a foreign or malformed NextToken fails with InvalidNextToken; MaxRecords over 100 with ValidationError', async () => {
    const first = await autoScalingClient(twin.clients, 'eu-central-1').send(
      new DescribeLaunchConfigurationsCommand({ MaxRecords: 5 }),
    );
    expect(await errorName(asg.send(new DescribeAutoScalingGroupsCommand({ NextToken: first.NextToken })))).toBe(
      'InvalidNextToken',
    );
    expect(await errorName(asg.send(new DescribeLaunchConfigurationsCommand({ NextToken: 'nonsense' })))).toBe(
      'InvalidNextToken',
    );
    expect(await errorName(asg.send(new DescribeAutoScalingGroupsCommand({ MaxRecords: 101 })))).toBe(
      'ValidationError',
    );
  });
});
