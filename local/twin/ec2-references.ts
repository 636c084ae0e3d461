import type { Ec2ActionTable, Ec2Context } from './ec2-context.ts';
import { checkId } from './ec2-errors.ts';
import { glob } from './ec2-filters.ts';
import { Cursors, pageSize } from './ec2-pages.ts';
import { tagSet, type XmlElements } from './ec2-xml.ts';
import { TwinServiceError } from './http.ts';
import type {
  InstanceStateName,
  LaunchTemplateReference,
  RegionState,
  TwinFleet,
  TwinInstance,
  TwinLaunchTemplate,
  TwinLaunchTemplateVersion,
} from './state.ts';

/**
 * The EC2 actions that tell what uses an image: instances, launch templates and their versions, EC2 Fleets and
 * Spot Fleet requests (which name launch template versions), and DescribeImageReferences, which AWS answers from
 * instances and launch templates. Plus DescribeRegions. All read the
 * seeded state; none mutate it.
 */

/** The regions the twin serves, with their opt-in status (opt-in regions are not enabled unless opted in). */
export const TWIN_REGIONS: ReadonlyArray<{
  regionName: string;
  optInStatus: 'opt-in-not-required' | 'opted-in' | 'not-opted-in';
}> = [
  ...[
    'us-east-1',
    'us-east-2',
    'us-west-1',
    'us-west-2',
    'ca-central-1',
    'sa-east-1',
    'eu-west-1',
    'eu-west-2',
    'eu-west-3',
    'eu-central-1',
    'eu-north-1',
    'ap-south-1',
    'ap-northeast-1',
    'ap-northeast-2',
    'ap-northeast-3',
    'ap-southeast-1',
    'ap-southeast-2',
  ].map((regionName) => ({ regionName, optInStatus: 'opt-in-not-required' as const })),
  ...['af-south-1', 'ap-east-1', 'eu-south-1', 'me-south-1', 'me-central-1'].map((regionName) => ({
    regionName,
    optInStatus: 'not-opted-in' as const,
  })),
];

const INSTANCE_STATE_CODES: Record<InstanceStateName, number> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};

const MAX_IMAGE_REFERENCE_IDS = 10;
/** AWS checks this many of a template's most recent versions (plus `$Default`) unless told otherwise. */
const DEFAULT_VERSION_DEPTH = 10;
/** Instances in these states reference their image unless `state-name` says otherwise. */
const DEFAULT_REFERENCING_STATES: InstanceStateName[] = ['pending', 'running', 'shutting-down', 'stopping', 'stopped'];

type Values<T> = (resource: T) => (string | undefined)[];

const INSTANCE_FILTERS: Record<string, Values<TwinInstance>> = {
  'image-id': (i) => [i.imageId],
  'instance-id': (i) => [i.instanceId],
  'instance-state-name': (i) => [i.state],
  'instance-state-code': (i) => [String(INSTANCE_STATE_CODES[i.state])],
  'instance-type': (i) => [i.instanceType],
  'availability-zone': (i) => [`${i.region}a`],
};

const TEMPLATE_FILTERS: Record<string, Values<TwinLaunchTemplate>> = {
  'launch-template-name': (t) => [t.launchTemplateName],
  'create-time': (t) => [t.createTime],
};

const VERSION_FILTERS: Record<string, Values<{ template: TwinLaunchTemplate; version: TwinLaunchTemplateVersion }>> = {
  'image-id': ({ version }) => [version.imageId],
  'instance-type': ({ version }) => [version.instanceType],
  'is-default-version': ({ template, version }) => [String(template.defaultVersionNumber === version.versionNumber)],
  'create-time': ({ version }) => [version.createTime],
};

const FLEET_FILTERS: Record<string, Values<TwinFleet>> = {
  'fleet-state': (f) => [f.state],
};

/** The `launchTemplateConfigs` list of a fleet or spot fleet request, as both APIs write it. */
const launchTemplateConfigsXml = (configs: LaunchTemplateReference[]): XmlElements[] =>
  configs.map((c) => ({
    launchTemplateSpecification: {
      launchTemplateId: c.launchTemplateId,
      launchTemplateName: c.launchTemplateName,
      version: c.version,
    },
  }));

function matcher<T>(
  filters: Map<string, string[]>,
  known: Record<string, Values<T>>,
  tagsOf?: (r: T) => Map<string, string>,
): (r: T) => boolean {
  const checks: ((r: T) => boolean)[] = [];
  for (const [name, values] of filters) {
    const patterns = values.map(glob);
    const any = (candidates: (string | undefined)[]): boolean =>
      candidates.some((c) => c !== undefined && patterns.some((p) => p.test(c)));
    if (tagsOf && name.startsWith('tag:')) checks.push((r) => any([tagsOf(r).get(name.slice(4))]));
    else if (tagsOf && name === 'tag-key') checks.push((r) => any([...tagsOf(r).keys()]));
    else if (tagsOf && name === 'tag-value') checks.push((r) => any([...tagsOf(r).values()]));
    else {
      const read = known[name];
      if (!read) throw new TwinServiceError('InvalidParameterValue', `The filter '${name}' is invalid`);
      checks.push((r) => any(read(r)));
    }
  }
  return (r) => checks.every((check) => check(r));
}

/** `$Latest`, `$Default` or a version number of this template; undefined when there is no such version. */
export function resolveTemplateVersion(
  template: TwinLaunchTemplate,
  version: string | undefined,
): TwinLaunchTemplateVersion | undefined {
  const wanted =
    version === undefined || version === '$Default'
      ? template.defaultVersionNumber
      : version === '$Latest'
        ? template.latestVersionNumber
        : Number(version);
  return template.versions.find((v) => v.versionNumber === wanted);
}

function findTemplate(region: RegionState, id: string | undefined, name: string | undefined): TwinLaunchTemplate {
  if (id !== undefined && name !== undefined) {
    throw new TwinServiceError(
      'InvalidParameterCombination',
      'The parameters LaunchTemplateId and LaunchTemplateName cannot be used together.',
    );
  }
  if (id !== undefined) {
    const template = region.launchTemplates.get(id);
    if (!template)
      throw new TwinServiceError(
        'InvalidLaunchTemplateId.NotFound',
        `The specified launch template, with template ID ${id}, does not exist.`,
      );
    return template;
  }
  const template = [...region.launchTemplates.values()].find((t) => t.launchTemplateName === name);
  if (!template)
    throw new TwinServiceError(
      'InvalidLaunchTemplateName.NotFoundException',
      `The specified launch template, with template name ${name ?? ''}, does not exist.`,
    );
  return template;
}

/**
 * The actions, for the EC2 action table. Each call to this makes its own pagination cursors, so a twin keeps
 * one table for its life.
 */
export function createEc2ReferenceActions(): Ec2ActionTable {
  const cursors = new Cursors();

  const instanceXml = (ctx: Ec2Context, i: TwinInstance): XmlElements => ({
    reservationId: `r-${i.instanceId.slice(2)}`,
    ownerId: i.ownerId ?? ctx.accountId,
    groupSet: [],
    instancesSet: [
      {
        instanceId: i.instanceId,
        imageId: i.imageId,
        instanceState: { code: INSTANCE_STATE_CODES[i.state], name: i.state },
        ...(i.stateReason ? { stateReason: i.stateReason } : {}),
        privateDnsName: '',
        dnsName: '',
        instanceType: i.instanceType,
        launchTime: i.launchTime,
        placement: { availabilityZone: `${i.region}a`, tenancy: 'default' },
        monitoring: { state: 'disabled' },
        architecture: 'x86_64',
        rootDeviceType: 'ebs',
        rootDeviceName: '/dev/xvda',
        virtualizationType: 'hvm',
        tagSet: tagSet(i.tags),
      },
    ],
  });

  const templateXml = (t: TwinLaunchTemplate, ctx: Ec2Context): XmlElements => ({
    launchTemplateId: t.launchTemplateId,
    launchTemplateName: t.launchTemplateName,
    createTime: t.createTime,
    createdBy: `arn:aws:iam::${ctx.accountId}:root`,
    defaultVersionNumber: t.defaultVersionNumber,
    latestVersionNumber: t.latestVersionNumber,
    tagSet: tagSet(t.tags),
  });

  const versionXml = (t: TwinLaunchTemplate, v: TwinLaunchTemplateVersion, ctx: Ec2Context): XmlElements => ({
    launchTemplateId: t.launchTemplateId,
    launchTemplateName: t.launchTemplateName,
    versionNumber: v.versionNumber,
    versionDescription: v.versionDescription,
    createTime: v.createTime,
    createdBy: `arn:aws:iam::${ctx.accountId}:root`,
    defaultVersion: t.defaultVersionNumber === v.versionNumber,
    launchTemplateData: { imageId: v.imageId, instanceType: v.instanceType },
  });

  return {
    DescribeInstances: (ctx) => {
      const region = ctx.state.region(ctx.region);
      const ids = ctx.params.list('InstanceId');
      const max = ctx.params.int('MaxResults');
      if (ids.length > 0 && max !== undefined) {
        throw new TwinServiceError(
          'InvalidParameterCombination',
          'The parameter instancesSet cannot be used with the parameter maxResults',
        );
      }
      for (const id of ids) {
        checkId('i', id);
        if (!region.instances.has(id))
          throw new TwinServiceError('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
      }
      const match = matcher(ctx.params.filters(), INSTANCE_FILTERS, (i) => i.tags);
      const { items, nextToken } = cursors.page(
        ctx.params.get('NextToken'),
        pageSize(max, 5, 1000),
        () =>
          [...region.instances.values()]
            .filter(
              (i) =>
                (i.ownerId ?? ctx.accountId) === ctx.caller.accountId &&
                (ids.length === 0 || ids.includes(i.instanceId)) &&
                match(i),
            )
            .map((i) => i.instanceId),
        (id) => region.instances.get(id),
      );
      return { reservationSet: items.map((i) => instanceXml(ctx, i)), nextToken };
    },

    DescribeLaunchTemplates: (ctx) => {
      const region = ctx.state.region(ctx.region);
      const ids = ctx.params.list('LaunchTemplateId');
      const names = ctx.params.list('LaunchTemplateName');
      for (const id of ids) findTemplate(region, id, undefined);
      for (const name of names) findTemplate(region, undefined, name);
      const match = matcher(ctx.params.filters(), TEMPLATE_FILTERS, (t) => t.tags);
      const { items, nextToken } = cursors.page(
        ctx.params.get('NextToken'),
        pageSize(ctx.params.int('MaxResults'), 1, 200),
        () =>
          [...region.launchTemplates.values()]
            .filter(
              (t) =>
                (ids.length === 0 && names.length === 0) ||
                ids.includes(t.launchTemplateId) ||
                names.includes(t.launchTemplateName),
            )
            .filter(match)
            .map((t) => t.launchTemplateId),
        (id) => region.launchTemplates.get(id),
      );
      return { launchTemplates: items.map((t) => templateXml(t, ctx)), nextToken };
    },

    DescribeLaunchTemplateVersions: (ctx) => {
      const region = ctx.state.region(ctx.region);
      const id = ctx.params.get('LaunchTemplateId');
      const name = ctx.params.get('LaunchTemplateName');
      const versions = ctx.params.list('LaunchTemplateVersion');
      const min = ctx.params.int('MinVersion');
      const maxVersion = ctx.params.int('MaxVersion');
      const match = matcher(ctx.params.filters(), VERSION_FILTERS);
      let selected: { template: TwinLaunchTemplate; version: TwinLaunchTemplateVersion }[];
      if (id === undefined && name === undefined) {
        // Without a template, only `$Latest` / `$Default` make sense: that version of every template.
        if (versions.length === 0 || versions.some((v) => v !== '$Latest' && v !== '$Default')) {
          throw new TwinServiceError(
            'InvalidParameterValue',
            'Specify a launch template, or the versions $Latest and/or $Default only.',
          );
        }
        selected = [];
        for (const template of region.launchTemplates.values()) {
          const numbers = new Set(
            versions.map((v) => (v === '$Latest' ? template.latestVersionNumber : template.defaultVersionNumber)),
          );
          for (const version of template.versions)
            if (numbers.has(version.versionNumber)) selected.push({ template, version });
        }
      } else {
        const template = findTemplate(region, id, name);
        if (versions.length > 0) {
          selected = versions.map((v) => {
            if (v !== '$Latest' && v !== '$Default' && !/^\d+$/.test(v)) {
              throw new TwinServiceError(
                'InvalidLaunchTemplateId.VersionNotFound',
                `Could not find launch template version ${v}`,
              );
            }
            const version = resolveTemplateVersion(template, v);
            if (!version)
              throw new TwinServiceError(
                'InvalidLaunchTemplateId.VersionNotFound',
                `Could not find launch template version ${v}`,
              );
            return { template, version };
          });
        } else {
          selected = template.versions
            .filter(
              (v) =>
                (min === undefined || v.versionNumber >= min) &&
                (maxVersion === undefined || v.versionNumber <= maxVersion),
            )
            .map((version) => ({ template, version }));
        }
      }
      const byKey = new Map(
        selected.filter(match).map((s) => [`${s.template.launchTemplateId}:${s.version.versionNumber}`, s]),
      );
      const { items, nextToken } = cursors.page(
        ctx.params.get('NextToken'),
        pageSize(ctx.params.int('MaxResults'), 1, 200),
        () => [...byKey.keys()],
        (key) => byKey.get(key),
      );
      return { launchTemplateVersionSet: items.map((s) => versionXml(s.template, s.version, ctx)), nextToken };
    },

    DescribeFleets: (ctx) => {
      const region = ctx.state.region(ctx.region);
      const ids = ctx.params.list('FleetId');
      for (const id of ids) {
        if (!region.fleets.has(id))
          throw new TwinServiceError('InvalidFleetId.NotFound', `The fleet ID '${id}' does not exist`);
      }
      const match = matcher(ctx.params.filters(), FLEET_FILTERS);
      const { items, nextToken } = cursors.page(
        ctx.params.get('NextToken'),
        pageSize(ctx.params.int('MaxResults'), 1, 1000),
        () =>
          [...region.fleets.values()]
            .filter((f) => (ids.length === 0 || ids.includes(f.fleetId)) && match(f))
            .map((f) => f.fleetId),
        (id) => region.fleets.get(id),
      );
      return {
        fleetSet: items.map((f) => ({
          createTime: f.createTime,
          fleetId: f.fleetId,
          fleetState: f.state,
          launchTemplateConfigs: launchTemplateConfigsXml(f.launchTemplateConfigs),
          type: 'maintain',
        })),
        nextToken,
      };
    },

    DescribeSpotFleetRequests: (ctx) => {
      const region = ctx.state.region(ctx.region);
      const ids = ctx.params.list('SpotFleetRequestId');
      for (const id of ids) {
        if (!region.spotFleetRequests.has(id)) {
          throw new TwinServiceError(
            'InvalidSpotFleetRequestId.NotFound',
            `The spot fleet request ID '${id}' does not exist`,
          );
        }
      }
      const { items, nextToken } = cursors.page(
        ctx.params.get('NextToken'),
        pageSize(ctx.params.int('MaxResults'), 1, 1000),
        () => [...region.spotFleetRequests.keys()].filter((id) => ids.length === 0 || ids.includes(id)),
        (id) => region.spotFleetRequests.get(id),
      );
      return {
        spotFleetRequestConfigSet: items.map((r) => ({
          createTime: r.createTime,
          spotFleetRequestConfig: {
            iamFleetRole: `arn:aws:iam::${ctx.accountId}:role/aws-ec2-spot-fleet-tagging-role`,
            targetCapacity: 1,
            launchTemplateConfigs: launchTemplateConfigsXml(r.launchTemplateConfigs),
            type: 'maintain',
          },
          spotFleetRequestId: r.spotFleetRequestId,
          spotFleetRequestState: r.state,
        })),
        nextToken,
      };
    },

    DescribeImageReferences: (ctx) => {
      const region = ctx.state.region(ctx.region);
      const imageIds = ctx.params.list('ImageId');
      if (imageIds.length === 0)
        throw new TwinServiceError('MissingParameter', 'The request must contain the parameter ImageId');
      if (imageIds.length > MAX_IMAGE_REFERENCE_IDS) {
        throw new TwinServiceError(
          'InvalidParameterValue',
          `Value (${imageIds.length}) for parameter ImageId is invalid. You can specify up to ${MAX_IMAGE_REFERENCE_IDS} image IDs.`,
        );
      }
      for (const imageId of imageIds) checkId('ami', imageId);
      const includeAll = ctx.params.bool('IncludeAllResourceTypes') ?? false;
      const requested = new Map<string, Map<string, string[]>>();
      for (const spec of ctx.params.structs('ResourceType')) {
        const type = spec.required('ResourceType');
        if (
          ![
            'ec2:Instance',
            'ec2:LaunchTemplate',
            'ssm:Parameter',
            'imagebuilder:ImageRecipe',
            'imagebuilder:ContainerRecipe',
          ].includes(type)
        ) {
          throw new TwinServiceError('InvalidParameterValue', `Value (${type}) for parameter ResourceType is invalid.`);
        }
        const options = new Map<string, string[]>();
        for (const option of spec.structs('ResourceTypeOption'))
          options.set(option.required('OptionName'), option.list('OptionValue'));
        requested.set(type, options);
      }
      if (!includeAll && requested.size === 0) {
        throw new TwinServiceError(
          'MissingParameter',
          'Either IncludeAllResourceTypes or ResourceType must be specified.',
        );
      }
      const wants = (type: string): Map<string, string[]> | undefined =>
        requested.get(type) ?? (includeAll ? new Map() : undefined);
      const wanted = new Set(imageIds);
      const references: { imageId: string; resourceType: string; arn: string }[] = [];

      const instanceOptions = wants('ec2:Instance');
      if (instanceOptions) {
        const states = instanceOptions.get('state-name') ?? DEFAULT_REFERENCING_STATES;
        for (const instance of region.instances.values()) {
          // Another account's instance (launched from a shared image) is not this account's reference.
          if (instance.ownerId !== undefined && instance.ownerId !== ctx.accountId) continue;
          if (!wanted.has(instance.imageId) || !states.includes(instance.state)) continue;
          references.push({
            imageId: instance.imageId,
            resourceType: 'ec2:Instance',
            arn: `arn:aws:ec2:${ctx.region}:${ctx.accountId}:instance/${instance.instanceId}`,
          });
        }
      }
      const templateOptions = wants('ec2:LaunchTemplate');
      if (templateOptions) {
        const depthValue = templateOptions.get('version-depth')?.[0];
        const depth = depthValue === undefined ? DEFAULT_VERSION_DEPTH : Number(depthValue);
        if (!Number.isInteger(depth) || depth < 1 || depth > 10_000) {
          throw new TwinServiceError(
            'InvalidParameterValue',
            `Value (${depthValue ?? ''}) for option version-depth is invalid.`,
          );
        }
        for (const template of region.launchTemplates.values()) {
          // The newest `depth` versions and the default version, each template reported once per image.
          const checked = template.versions.filter(
            (v) =>
              v.versionNumber > template.latestVersionNumber - depth ||
              v.versionNumber === template.defaultVersionNumber,
          );
          for (const imageId of new Set(checked.map((v) => v.imageId))) {
            if (imageId === undefined || !wanted.has(imageId)) continue;
            references.push({
              imageId,
              resourceType: 'ec2:LaunchTemplate',
              arn: `arn:aws:ec2:${ctx.region}:${ctx.accountId}:launch-template/${template.launchTemplateId}`,
            });
          }
        }
      }
      const byKey = new Map(references.map((r) => [`${r.imageId}|${r.arn}`, r]));
      const { items, nextToken } = cursors.page(
        ctx.params.get('NextToken'),
        pageSize(ctx.params.int('MaxResults'), 5, 1000),
        () => [...byKey.keys()],
        (key) => byKey.get(key),
      );
      return {
        imageReferenceSet: items.map((r) => ({ imageId: r.imageId, resourceType: r.resourceType, arn: r.arn })),
        nextToken,
      };
    },

    DescribeRegions: (ctx) => {
      const all = ctx.params.bool('AllRegions') ?? false;
      const names = ctx.params.list('RegionName');
      for (const name of names) {
        if (!TWIN_REGIONS.some((r) => r.regionName === name))
          throw new TwinServiceError('InvalidParameterValue', `Invalid region: ${name}`);
      }
      const match = matcher(ctx.params.filters(), {
        'region-name': (r: (typeof TWIN_REGIONS)[number]) => [r.regionName],
        'opt-in-status': (r) => [r.optInStatus],
        endpoint: (r) => [`ec2.${r.regionName}.amazonaws.com`],
      });
      const regions = TWIN_REGIONS.filter((r) =>
        names.length > 0 ? names.includes(r.regionName) : all || r.optInStatus !== 'not-opted-in',
      ).filter(match);
      return {
        regionInfo: regions.map((r) => ({
          regionName: r.regionName,
          regionEndpoint: `ec2.${r.regionName}.amazonaws.com`,
          optInStatus: r.optInStatus,
        })),
      };
    },
  };
}
