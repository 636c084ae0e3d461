import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DescribeFleetsCommand,
  DescribeImageReferencesCommand,
  DescribeInstancesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeLaunchTemplateVersionsCommand,
  DescribeRegionsCommand,
  DescribeSpotFleetRequestsCommand,
  paginateDescribeFleets,
  paginateDescribeImageReferences,
  paginateDescribeInstances,
  paginateDescribeLaunchTemplates,
  paginateDescribeLaunchTemplateVersions,
  paginateDescribeSpotFleetRequests,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { startHarness, type Harness } from './harness.ts';
import { errorName } from './errors.ts';
import { ec2Client } from '../../../lib/aws/clients.ts';

const R = 'us-east-1';

describe('twin EC2 references', () => {
  let twin: Harness;
  let ec2: EC2Client;
  let images: string[];
  let running: string;
  let stopped: string;
  let terminated: string;
  let template: string;
  beforeAll(async () => {
    twin = await startHarness();
    ec2 = ec2Client(twin.clients, R);
    images = Array.from({ length: 6 }, (_, i) => twin.seed.image(R, { name: `app-${i}` }));
    const [a, b, c, d, e] = images as [string, string, string, string, string, string];
    running = twin.seed.instance(R, { imageId: a, tags: { Name: 'web-1' } });
    stopped = twin.seed.instance(R, { imageId: b, state: 'stopped' });
    terminated = twin.seed.instance(R, { imageId: c, state: 'terminated' });
    // Version 1 is the default, 3 the latest; version 2 is neither.
    template = twin.seed.launchTemplate(R, {
      name: 'web',
      versions: [{ imageId: d }, { imageId: c }, { imageId: e }],
      defaultVersion: 1,
    });
  });
  afterAll(async () => {
    await twin.stop();
  });

  describe('DescribeInstances', () => {
    it('reports seeded instances with image and state', async () => {
      const { Reservations } = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [running] }));
      const instance = Reservations?.[0]?.Instances?.[0];
      expect(instance).toMatchObject({ InstanceId: running, ImageId: images[0], State: { Code: 16, Name: 'running' } });
      expect(instance?.Tags).toEqual([{ Key: 'Name', Value: 'web-1' }]);
      expect(Reservations?.[0]?.OwnerId).toBe(twin.accountId);
    });

    it('filters by image-id and instance-state-name', async () => {
      const byImage = await ec2.send(
        new DescribeInstancesCommand({ Filters: [{ Name: 'image-id', Values: [images[1] ?? ''] }] }),
      );
      expect(byImage.Reservations?.flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId)).toEqual([stopped]);
      const live = await ec2.send(
        new DescribeInstancesCommand({ Filters: [{ Name: 'instance-state-name', Values: ['running', 'stopped'] }] }),
      );
      const ids = live.Reservations?.flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId);
      expect(ids).toContain(running);
      expect(ids).toContain(stopped);
      expect(ids).not.toContain(terminated);
      const state = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [terminated] }));
      expect(state.Reservations?.[0]?.Instances?.[0]?.State).toEqual({ Code: 48, Name: 'terminated' });
    });

    it('pages with MaxResults/NextToken', async () => {
      const region = 'ca-central-1';
      for (let i = 0; i < 12; i++) twin.seed.instance(region, { imageId: 'ami-00000000000000001' });
      const client = ec2Client(twin.clients, region);
      const first = await client.send(new DescribeInstancesCommand({ MaxResults: 5 }));
      expect(first.Reservations).toHaveLength(5);
      expect(first.NextToken).toBeTruthy();
      const ids: string[] = [];
      for await (const p of paginateDescribeInstances({ client, pageSize: 5 }, {}))
        ids.push(...(p.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId ?? ''));
      expect(ids).toHaveLength(12);
      expect(new Set(ids).size).toBe(12);
    });

    it('names its errors as EC2 does', async () => {
      expect(await errorName(ec2.send(new DescribeInstancesCommand({ InstanceIds: ['i-0123456789abcdef0'] })))).toBe(
        'InvalidInstanceID.NotFound',
      );
      expect(await errorName(ec2.send(new DescribeInstancesCommand({ InstanceIds: ['nope'] })))).toBe(
        'InvalidInstanceID.Malformed',
      );
      expect(
        await errorName(ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'bogus', Values: ['x'] }] }))),
      ).toBe('InvalidParameterValue');
      expect(await errorName(ec2.send(new DescribeInstancesCommand({ MaxResults: 2 })))).toBe('InvalidParameterValue');
      expect(await errorName(ec2.send(new DescribeInstancesCommand({ NextToken: 'forged' })))).toBe(
        'InvalidPaginationToken',
      );
    });
  });

  describe('launch templates', () => {
    it('DescribeLaunchTemplates reports default and latest version numbers, by id and by name', async () => {
      const byId = await ec2.send(new DescribeLaunchTemplatesCommand({ LaunchTemplateIds: [template] }));
      expect(byId.LaunchTemplates?.[0]).toMatchObject({
        LaunchTemplateId: template,
        LaunchTemplateName: 'web',
        DefaultVersionNumber: 1,
        LatestVersionNumber: 3,
      });
      const byName = await ec2.send(new DescribeLaunchTemplatesCommand({ LaunchTemplateNames: ['web'] }));
      expect(byName.LaunchTemplates?.map((t) => t.LaunchTemplateId)).toEqual([template]);
      expect(await errorName(ec2.send(new DescribeLaunchTemplatesCommand({ LaunchTemplateNames: ['nope'] })))).toBe(
        'InvalidLaunchTemplateName.NotFoundException',
      );
      expect(
        await errorName(ec2.send(new DescribeLaunchTemplatesCommand({ LaunchTemplateIds: ['lt-0123456789abcdef0'] }))),
      ).toBe('InvalidLaunchTemplateId.NotFound');
    });

    it('DescribeLaunchTemplateVersions resolves $Default and $Latest to their images', async () => {
      const { LaunchTemplateVersions: versions } = await ec2.send(
        new DescribeLaunchTemplateVersionsCommand({ LaunchTemplateName: 'web', Versions: ['$Default', '$Latest'] }),
      );
      expect(versions?.map((v) => [v.VersionNumber, v.DefaultVersion, v.LaunchTemplateData?.ImageId])).toEqual([
        [1, true, images[3]],
        [3, false, images[4]],
      ]);
      const all = await ec2.send(new DescribeLaunchTemplateVersionsCommand({ LaunchTemplateId: template }));
      expect(all.LaunchTemplateVersions?.map((v) => v.LaunchTemplateData?.ImageId)).toEqual([
        images[3],
        images[2],
        images[4],
      ]);
      const range = await ec2.send(
        new DescribeLaunchTemplateVersionsCommand({ LaunchTemplateId: template, MinVersion: '2', MaxVersion: '2' }),
      );
      expect(range.LaunchTemplateVersions?.map((v) => v.VersionNumber)).toEqual([2]);
      const byImage = await ec2.send(
        new DescribeLaunchTemplateVersionsCommand({
          LaunchTemplateId: template,
          Filters: [{ Name: 'image-id', Values: [images[2] ?? ''] }],
        }),
      );
      expect(byImage.LaunchTemplateVersions?.map((v) => v.VersionNumber)).toEqual([2]);
    });

    it('DescribeLaunchTemplateVersions without a template lists $Latest of every template', async () => {
      const region = 'eu-west-3';
      for (let i = 0; i < 7; i++)
        twin.seed.launchTemplate(region, {
          name: `t${i}`,
          versions: [{ imageId: 'ami-00000000000000001' }, { imageId: `ami-0000000000000010${i}` }],
        });
      const client = ec2Client(twin.clients, region);
      const latest: string[] = [];
      for await (const p of paginateDescribeLaunchTemplateVersions(
        { client, pageSize: 3 },
        { Versions: ['$Latest'] },
      )) {
        latest.push(...(p.LaunchTemplateVersions ?? []).map((v) => v.LaunchTemplateData?.ImageId ?? ''));
      }
      expect(latest.sort()).toEqual(Array.from({ length: 7 }, (_, i) => `ami-0000000000000010${i}`));
      const names: string[] = [];
      for await (const p of paginateDescribeLaunchTemplates({ client, pageSize: 2 }, {}))
        names.push(...(p.LaunchTemplates ?? []).map((t) => t.LaunchTemplateName ?? ''));
      expect(names.sort()).toEqual(['t0', 't1', 't2', 't3', 't4', 't5', 't6']);
      expect(await errorName(client.send(new DescribeLaunchTemplateVersionsCommand({ Versions: ['1'] })))).toBe(
        'InvalidParameterValue',
      );
    });

    it('DescribeLaunchTemplateVersions names unknown templates and versions', async () => {
      expect(await errorName(ec2.send(new DescribeLaunchTemplateVersionsCommand({ LaunchTemplateName: 'nope' })))).toBe(
        'InvalidLaunchTemplateName.NotFoundException',
      );
      expect(
        await errorName(
          ec2.send(new DescribeLaunchTemplateVersionsCommand({ LaunchTemplateId: template, Versions: ['9'] })),
        ),
      ).toBe('InvalidLaunchTemplateId.VersionNotFound');
      expect(
        await errorName(
          ec2.send(
            new DescribeLaunchTemplateVersionsCommand({ LaunchTemplateId: template, LaunchTemplateName: 'web' }),
          ),
        ),
      ).toBe('InvalidParameterCombination');
    });
  });

  describe('fleets', () => {
    it("DescribeFleets reports each fleet's state and the launch template versions it names, filtered by fleet-state", async () => {
      const active = twin.seed.fleet(R, { launchTemplateId: template, version: '2' });
      const byName = twin.seed.fleet(R, { launchTemplateName: 'web', version: '$Latest', state: 'deleted_running' });
      const deleted = twin.seed.fleet(R, { launchTemplateId: template, version: '1', state: 'deleted' });
      expect(active).toMatch(/^fleet-[0-9a-f-]{36}$/);
      const { Fleets } = await ec2.send(new DescribeFleetsCommand({ FleetIds: [active, byName] }));
      expect(
        Fleets?.map((f) => [
          f.FleetId,
          f.FleetState,
          f.LaunchTemplateConfigs?.map((c) => c.LaunchTemplateSpecification),
        ]),
      ).toEqual([
        [active, 'active', [{ LaunchTemplateId: template, Version: '2' }]],
        [byName, 'deleted_running', [{ LaunchTemplateName: 'web', Version: '$Latest' }]],
      ]);
      expect(Fleets?.[0]?.CreateTime).toBeInstanceOf(Date);
      const live = await ec2.send(
        new DescribeFleetsCommand({ Filters: [{ Name: 'fleet-state', Values: ['active', 'deleted_running'] }] }),
      );
      const liveIds = live.Fleets?.map((f) => f.FleetId);
      expect(liveIds).toEqual(expect.arrayContaining([active, byName]));
      expect(liveIds).not.toContain(deleted);
      expect(
        await errorName(
          ec2.send(new DescribeFleetsCommand({ FleetIds: ['fleet-00000000-0000-4000-a000-000000000000'] })),
        ),
      ).toBe('InvalidFleetId.NotFound');
      expect(
        await errorName(ec2.send(new DescribeFleetsCommand({ Filters: [{ Name: 'bogus', Values: ['x'] }] }))),
      ).toBe('InvalidParameterValue');
    });

    it("DescribeSpotFleetRequests reports each request's state and the launch template versions in its config", async () => {
      const request = twin.seed.spotFleetRequest(R, {
        launchTemplateName: 'web',
        version: '2',
        state: 'cancelled_running',
      });
      expect(request).toMatch(/^sfr-[0-9a-f-]{36}$/);
      const { SpotFleetRequestConfigs } = await ec2.send(
        new DescribeSpotFleetRequestsCommand({ SpotFleetRequestIds: [request] }),
      );
      expect(SpotFleetRequestConfigs).toHaveLength(1);
      expect(SpotFleetRequestConfigs?.[0]).toMatchObject({
        SpotFleetRequestId: request,
        SpotFleetRequestState: 'cancelled_running',
      });
      expect(SpotFleetRequestConfigs?.[0]?.SpotFleetRequestConfig?.LaunchTemplateConfigs).toEqual([
        { LaunchTemplateSpecification: { LaunchTemplateName: 'web', Version: '2' } },
      ]);
      expect(
        await errorName(
          ec2.send(
            new DescribeSpotFleetRequestsCommand({ SpotFleetRequestIds: ['sfr-00000000-0000-4000-a000-000000000000'] }),
          ),
        ),
      ).toBe('InvalidSpotFleetRequestId.NotFound');
    });

    it('both page with MaxResults/NextToken', async () => {
      const region = 'eu-north-1';
      const client = ec2Client(twin.clients, region);
      const lt = twin.seed.launchTemplate(region, { name: 'batch', versions: [{ imageId: 'ami-00000000000000001' }] });
      const fleets = Array.from({ length: 7 }, () => twin.seed.fleet(region, { launchTemplateId: lt, version: '1' }));
      const requests = Array.from({ length: 7 }, () =>
        twin.seed.spotFleetRequest(region, { launchTemplateId: lt, version: '1' }),
      );
      const first = await client.send(new DescribeFleetsCommand({ MaxResults: 3 }));
      expect(first.Fleets).toHaveLength(3);
      expect(first.NextToken).toBeTruthy();
      const fleetIds: string[] = [];
      for await (const p of paginateDescribeFleets({ client, pageSize: 3 }, {}))
        fleetIds.push(...(p.Fleets ?? []).map((f) => f.FleetId ?? ''));
      expect(fleetIds.sort()).toEqual([...fleets].sort());
      const requestIds: string[] = [];
      let pages = 0;
      for await (const p of paginateDescribeSpotFleetRequests({ client, pageSize: 3 }, {})) {
        pages++;
        requestIds.push(...(p.SpotFleetRequestConfigs ?? []).map((r) => r.SpotFleetRequestId ?? ''));
      }
      expect(pages).toBe(3);
      expect(requestIds.sort()).toEqual([...requests].sort());
      expect(await errorName(client.send(new DescribeFleetsCommand({ NextToken: 'forged' })))).toBe(
        'InvalidPaginationToken',
      );
    });
  });

  describe('DescribeImageReferences', () => {
    const refs = async (
      imageIds: string[],
      extra: Record<string, unknown> = { IncludeAllResourceTypes: true },
    ): Promise<string[]> => {
      const out: string[] = [];
      for await (const p of paginateDescribeImageReferences(
        { client: ec2, pageSize: 5 },
        { ImageIds: imageIds, ...extra },
      )) {
        out.push(...(p.ImageReferences ?? []).map((r) => `${r.ImageId} ${r.ResourceType} ${r.Arn}`));
      }
      return out.sort();
    };

    it('reports instances that are not terminated and the $Default/$Latest versions of launch templates', async () => {
      const lt = `arn:aws:ec2:${R}:${twin.accountId}:launch-template/${template}`;
      expect(await refs(images.slice(0, 6))).toEqual(
        [
          `${images[0]} ec2:Instance arn:aws:ec2:${R}:${twin.accountId}:instance/${running}`,
          `${images[1]} ec2:Instance arn:aws:ec2:${R}:${twin.accountId}:instance/${stopped}`,
          // Version 2 (images[2]) is within the default depth of recent versions, so AWS reports it too.
          `${images[2]} ec2:LaunchTemplate ${lt}`,
          `${images[3]} ec2:LaunchTemplate ${lt}`,
          `${images[4]} ec2:LaunchTemplate ${lt}`,
        ].sort(),
      );
      // The terminated instance's image is referenced only through the template, and the unused image not at all.
      expect(await refs([images[5] ?? ''])).toEqual([]);
    });

    it('honours ResourceType options: instance states and launch template version depth', async () => {
      const onlyInstances = await refs(images.slice(0, 3), {
        ResourceTypes: [
          {
            ResourceType: 'ec2:Instance',
            ResourceTypeOptions: [{ OptionName: 'state-name', OptionValues: ['terminated'] }],
          },
        ],
      });
      expect(onlyInstances).toEqual([
        `${images[2]} ec2:Instance arn:aws:ec2:${R}:${twin.accountId}:instance/${terminated}`,
      ]);
      const depthOne = await refs(images.slice(2, 5), {
        ResourceTypes: [
          {
            ResourceType: 'ec2:LaunchTemplate',
            ResourceTypeOptions: [{ OptionName: 'version-depth', OptionValues: ['1'] }],
          },
        ],
      });
      // Depth 1 checks $Latest (version 3) and still the default version (1), not version 2.
      expect(depthOne.map((r) => r.split(' ')[0])).toEqual([images[3], images[4]].sort());
    });

    it('takes at most 10 image ids and needs a resource type choice', async () => {
      const eleven = Array.from({ length: 11 }, (_, i) => `ami-0000000000000000${i.toString(16)}`);
      expect(
        await errorName(
          ec2.send(new DescribeImageReferencesCommand({ ImageIds: eleven, IncludeAllResourceTypes: true })),
        ),
      ).toBe('InvalidParameterValue');
      expect(await errorName(ec2.send(new DescribeImageReferencesCommand({ ImageIds: [images[0] ?? ''] })))).toBe(
        'MissingParameter',
      );
      expect(
        await errorName(
          ec2.send(new DescribeImageReferencesCommand({ ImageIds: ['bad-id'], IncludeAllResourceTypes: true })),
        ),
      ).toBe('InvalidAMIID.Malformed');
    });
  });

  describe('DescribeRegions', () => {
    it('lists enabled regions, all regions with AllRegions, and named ones', async () => {
      const enabled = await ec2.send(new DescribeRegionsCommand({}));
      const names = enabled.Regions?.map((r) => r.RegionName) ?? [];
      expect(names).toEqual(expect.arrayContaining(['us-east-1', 'us-west-2', 'eu-west-1']));
      expect(names).not.toContain('af-south-1');
      expect(enabled.Regions?.find((r) => r.RegionName === 'eu-west-1')).toEqual({
        RegionName: 'eu-west-1',
        Endpoint: 'ec2.eu-west-1.amazonaws.com',
        OptInStatus: 'opt-in-not-required',
      });
      const all = await ec2.send(new DescribeRegionsCommand({ AllRegions: true }));
      expect(all.Regions?.find((r) => r.RegionName === 'af-south-1')?.OptInStatus).toBe('not-opted-in');
      const named = await ec2.send(new DescribeRegionsCommand({ RegionNames: ['us-west-2'] }));
      expect(named.Regions?.map((r) => r.RegionName)).toEqual(['us-west-2']);
      expect(await errorName(ec2.send(new DescribeRegionsCommand({ RegionNames: ['moon-east-1'] })))).toBe(
        'InvalidParameterValue',
      );
    });
  });
});
