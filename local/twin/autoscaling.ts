import { createHash } from 'node:crypto';
import { TwinServiceError, type ServiceHandler } from './http.ts';
import {
  decodeToken,
  encodeToken,
  listParam,
  page,
  queryResponse,
  queryService,
  structIndexes,
  type QueryAction,
  type XmlNode,
} from './query-protocol.ts';
import type {
  LaunchTemplateReference,
  RegionState,
  TwinAutoScalingGroup,
  TwinLaunchConfiguration,
  TwinState,
} from './state.ts';

const XMLNS = 'http://autoscaling.amazonaws.com/doc/2011-01-01/';
const DEFAULT_PAGE = 50;
const MAX_PAGE = 100;

export interface AutoScalingServiceContext {
  accountId: string;
}

/**
 * EC2 Auto Scaling over awsQuery, read-only over the seeded groups and launch configurations: what retention
 * needs to know which images (directly, or through launch templates and mixed-instances policies) are in use.
 */
export function createAutoScalingService(state: TwinState, ctx: AutoScalingServiceContext): ServiceHandler {
  const uuidOf = (kind: string, region: string, name: string): string => {
    const hex = createHash('sha256').update(`${kind}:${region}:${name}`).digest('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
  };
  const groupArn = (g: TwinAutoScalingGroup): string =>
    `arn:aws:autoscaling:${g.region}:${ctx.accountId}:autoScalingGroup:${uuidOf('asg', g.region, g.autoScalingGroupName)}:autoScalingGroupName/${g.autoScalingGroupName}`;
  const configArn = (c: TwinLaunchConfiguration): string =>
    `arn:aws:autoscaling:${c.region}:${ctx.accountId}:launchConfiguration:${uuidOf('lc', c.region, c.launchConfigurationName)}:launchConfigurationName/${c.launchConfigurationName}`;

  /** AWS reports both the id and the name of a template, and `$Default` when the group named no version. */
  const templateSpec = (region: RegionState, ref: LaunchTemplateReference): XmlNode => {
    const template = ref.launchTemplateId
      ? region.launchTemplates.get(ref.launchTemplateId)
      : [...region.launchTemplates.values()].find((t) => t.launchTemplateName === ref.launchTemplateName);
    return {
      LaunchTemplateId: ref.launchTemplateId ?? template?.launchTemplateId,
      LaunchTemplateName: ref.launchTemplateName ?? template?.launchTemplateName,
      Version: ref.version ?? '$Default',
    };
  };

  const groupXml = (region: RegionState, g: TwinAutoScalingGroup): XmlNode => {
    const mixed = g.mixedInstancesPolicy;
    const instances = [...region.instances.values()].filter(
      (i) => i.tags.get('aws:autoscaling:groupName') === g.autoScalingGroupName && i.state !== 'terminated',
    );
    return {
      AutoScalingGroupName: g.autoScalingGroupName,
      AutoScalingGroupARN: groupArn(g),
      LaunchConfigurationName: g.launchConfigurationName,
      LaunchTemplate: g.launchTemplate ? templateSpec(region, g.launchTemplate) : undefined,
      MixedInstancesPolicy: mixed
        ? {
            LaunchTemplate: {
              LaunchTemplateSpecification: templateSpec(region, mixed.launchTemplate.launchTemplateSpecification),
              Overrides: (mixed.launchTemplate.overrides ?? []).map((o) => ({
                InstanceType: o.instanceType,
                LaunchTemplateSpecification: o.launchTemplateSpecification
                  ? templateSpec(region, o.launchTemplateSpecification)
                  : undefined,
              })),
            },
          }
        : undefined,
      MinSize: g.minSize,
      MaxSize: g.maxSize,
      DesiredCapacity: g.desiredCapacity,
      DefaultCooldown: 300,
      AvailabilityZones: [`${g.region}a`],
      HealthCheckType: 'EC2',
      HealthCheckGracePeriod: 300,
      Instances: instances.map((i) => ({
        InstanceId: i.instanceId,
        InstanceType: i.instanceType,
        AvailabilityZone: `${g.region}a`,
        LifecycleState: i.state === 'running' ? 'InService' : 'Pending',
        HealthStatus: 'Healthy',
        ProtectedFromScaleIn: false,
        LaunchTemplate: i.launchTemplate ? templateSpec(region, i.launchTemplate) : undefined,
      })),
      CreatedTime: g.createdTime,
      Tags: [...g.tags].map(([Key, Value]) => ({
        ResourceId: g.autoScalingGroupName,
        ResourceType: 'auto-scaling-group',
        Key,
        Value,
        PropagateAtLaunch: true,
      })),
      ServiceLinkedRoleARN: `arn:aws:iam::${ctx.accountId}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`,
    };
  };

  const configXml = (c: TwinLaunchConfiguration): XmlNode => ({
    LaunchConfigurationName: c.launchConfigurationName,
    LaunchConfigurationARN: configArn(c),
    ImageId: c.imageId,
    InstanceType: c.instanceType,
    CreatedTime: c.createdTime,
    KeyName: '',
    SecurityGroups: [],
    ClassicLinkVPCSecurityGroups: [],
    UserData: '',
    KernelId: '',
    RamdiskId: '',
    BlockDeviceMappings: [],
    InstanceMonitoring: { Enabled: true },
    EbsOptimized: false,
  });

  const pageSize = (params: Record<string, string>): number => {
    if (params.MaxRecords === undefined) return DEFAULT_PAGE;
    const size = Number(params.MaxRecords);
    if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE) {
      throw new TwinServiceError(
        'ValidationError',
        `1 validation error detected: Value '${params.MaxRecords}' at 'maxRecords' failed to satisfy constraint: Member must have value less than or equal to ${MAX_PAGE}`,
      );
    }
    return size;
  };

  const paged = <T>(scope: string, items: T[], params: Record<string, string>): { items: T[]; nextToken?: string } => {
    const size = pageSize(params);
    const offset = decodeToken(scope, params.NextToken);
    if (offset === undefined) throw new TwinServiceError('InvalidNextToken', 'The token provided is not valid.');
    const { items: slice, next } = page(items, offset, size);
    return next === undefined ? { items: slice } : { items: slice, nextToken: encodeToken(scope, next) };
  };

  const actions: Record<string, QueryAction> = {
    DescribeAutoScalingGroups: ({ region, params, requestId }) => {
      const regionState = state.region(region);
      const names = listParam(params, 'AutoScalingGroupNames.member');
      const filters = structIndexes(params, 'Filters.member').map((n) => ({
        name: params[`Filters.member.${n}.Name`] ?? '',
        values: listParam(params, `Filters.member.${n}.Values.member`),
      }));
      const groups = [...regionState.autoScalingGroups.values()]
        .filter((g) => names.length === 0 || names.includes(g.autoScalingGroupName))
        .filter((g) => filters.every((f) => matchesGroupFilter(g, f.name, f.values)))
        .sort((a, b) => a.autoScalingGroupName.localeCompare(b.autoScalingGroupName));
      const scope = `asg:${region}:${names.join(',')}:${JSON.stringify(filters)}`;
      const { items, nextToken } = paged(scope, groups, params);
      return queryResponse(
        'DescribeAutoScalingGroups',
        XMLNS,
        { AutoScalingGroups: items.map((g) => groupXml(regionState, g)), NextToken: nextToken },
        requestId,
      );
    },

    DescribeLaunchConfigurations: ({ region, params, requestId }) => {
      const names = listParam(params, 'LaunchConfigurationNames.member');
      const configs = [...state.region(region).launchConfigurations.values()]
        .filter((c) => names.length === 0 || names.includes(c.launchConfigurationName))
        .sort((a, b) => a.launchConfigurationName.localeCompare(b.launchConfigurationName));
      const { items, nextToken } = paged(`lc:${region}:${names.join(',')}`, configs, params);
      return queryResponse(
        'DescribeLaunchConfigurations',
        XMLNS,
        { LaunchConfigurations: items.map(configXml), NextToken: nextToken },
        requestId,
      );
    },
  };

  return queryService(XMLNS, actions);
}

/** The filters DescribeAutoScalingGroups supports: `tag-key`, `tag-value`, `tag:<key>`. */
function matchesGroupFilter(group: TwinAutoScalingGroup, name: string, values: string[]): boolean {
  if (name === 'tag-key') return values.some((v) => group.tags.has(v));
  if (name === 'tag-value') return [...group.tags.values()].some((v) => values.includes(v));
  if (name.startsWith('tag:')) {
    const value = group.tags.get(name.slice(4));
    return value !== undefined && values.includes(value);
  }
  throw new TwinServiceError('ValidationError', `Filter name '${name}' is not supported.`);
}
