import {
  paginateDescribeAutoScalingGroups,
  paginateDescribeLaunchConfigurations,
  type AutoScalingClient,
  type AutoScalingGroup,
  type LaunchTemplateSpecification,
} from '@aws-sdk/client-auto-scaling';
import {
  paginateDescribeFleets,
  paginateDescribeImageReferences,
  paginateDescribeInstances,
  paginateDescribeLaunchTemplates,
  paginateDescribeLaunchTemplateVersions,
  paginateDescribeSnapshots,
  paginateDescribeSpotFleetRequests,
  type EC2Client,
  type FleetLaunchTemplateSpecification,
} from '@aws-sdk/client-ec2';
import type { ImageRecord } from '../domain/image.ts';
import type {
  ImageReference,
  ImageReferencesCoverage,
  LiveSources,
  ReferenceKind,
  RetentionInventory,
} from '../domain/retention-inventory.ts';
import { sourceKey } from '../domain/retention-inventory.ts';
import { TAG, isReplica } from '../domain/tags.ts';
import { type Clients, autoScalingClient, ec2Client, rbinClient } from './clients.ts';
import { listRecycleBinRules, REQUIRED_PERMISSIONS as RECYCLE_BIN_PERMISSIONS } from './recycle-bin.ts';
import { listImages } from './images.ts';
import { paced, TokenBucketPacer } from './pacer.ts';
import { awsErrorName, isAwsError } from '../domain/errors.ts';

/**
 * Retention's inventory of one region: every image the account owns (deprecated and disabled too), snapshot
 * sizes, and everything that references an image: instances in any state but terminated, launch templates'
 * `$Default` and `$Latest` versions and every version an ASG, EC2 Fleet or Spot Fleet request names, launch
 * configurations, ASGs (launch template, mixed-instances policy and its overrides, launch configuration), EC2
 * Fleets and Spot Fleet requests that may still launch or still run instances (their launch templates, and
 * images a fleet's overrides or a request's launch specifications name directly), and DescribeImageReferences.
 *
 * Calls grow with pages, not images: one call per page of each describe, plus one DescribeLaunchTemplateVersions
 * per launch template and one DescribeImageReferences per 10 images that could be acted on.
 */

export const REQUIRED_PERMISSIONS = [
  'ec2:DescribeImages',
  'ec2:DescribeSnapshots',
  'ec2:DescribeInstances',
  'ec2:DescribeLaunchTemplates',
  'ec2:DescribeLaunchTemplateVersions',
  'ec2:DescribeImageReferences',
  'ec2:DescribeFleets',
  'ec2:DescribeSpotFleetRequests',
  'autoscaling:DescribeAutoScalingGroups',
  'autoscaling:DescribeLaunchConfigurations',
  ...RECYCLE_BIN_PERMISSIONS,
] as const;

export interface InventoryOptions {
  region: string;
  accountId: string;
  /** Scan instances, launch templates, launch configurations and ASGs (default true). */
  protectInUse?: boolean;
  /** List the source regions of this region's replicas to see which sources still exist (default true). */
  lookUpSources?: boolean;
  /** Paces the describes (default: real time at EC2's rates). */
  pacer?: TokenBucketPacer;
}

/** Instances in these states still reference their image. */
const LIVE_INSTANCE_STATES = ['pending', 'running', 'shutting-down', 'stopping', 'stopped'];
/**
 * Fleets in these states may launch from their launch templates (again): `deleted_running` and
 * `cancelled_running` were deleted without terminating their instances, which a replacement may still need.
 */
const LIVE_FLEET_STATES = ['submitted', 'active', 'modifying', 'deleted_running'];
const LIVE_SPOT_FLEET_STATES = new Set(['submitted', 'active', 'modifying', 'cancelled_running']);
const IMAGE_REFERENCE_BATCH = 10;
const SSM_IMAGE = 'resolve:ssm:';

export async function collectInventory(clients: Clients, options: InventoryOptions): Promise<RetentionInventory> {
  const { region, accountId } = options;
  const ec2 = ec2Client(clients, region);
  const pacer = options.pacer ?? new TokenBucketPacer();
  const warnings: string[] = [];
  const references = new Map<string, ImageReference[]>();
  const addRef = (imageId: string | undefined, ref: ImageReference): void => {
    if (!imageId) return;
    if (imageId.startsWith(SSM_IMAGE)) {
      warnings.push(
        `${ref.kind} ${ref.id} names its image by SSM parameter (${imageId}); only DescribeImageReferences sees through it`,
      );
      return;
    }
    const list = references.get(imageId);
    if (!list) references.set(imageId, [ref]);
    else if (!list.some((r) => r.kind === ref.kind && r.id === ref.id)) list.push(ref);
  };

  const images = await listImages(ec2, region, { owners: ['self'], includeDeprecated: true, includeDisabled: true });
  const { sizes: snapshotSizes, tags: snapshotTags } = await describeSnapshots(ec2, pacer);
  const bin = await listRecycleBinRules(rbinClient(clients, region), region);
  if (bin.warning) warnings.push(bin.warning);
  if (options.protectInUse ?? true) {
    for (const instance of await describeLiveInstances(ec2, pacer))
      addRef(instance.imageId, { kind: 'instance', id: instance.instanceId });
    await scanTemplatesAndGroups(ec2, autoScalingClient(clients, region), pacer, addRef, warnings);
  }
  const sources = options.lookUpSources === false ? undefined : await lookUpSources(clients, images, warnings);
  return {
    region,
    accountId,
    images,
    snapshotSizes,
    snapshotTags,
    recycleBinRules: bin.rules,
    references,
    imageReferences: 'not-checked',
    ...(sources ? { sources } : {}),
    warnings,
  };
}

/**
 * Asks DescribeImageReferences about these images (10 per call) and adds what it finds to the inventory.
 * Regions without the action (InvalidAction, UnsupportedOperation) leave the inventory to the scans and say so.
 */
export async function addImageReferences(
  ec2: EC2Client,
  inventory: RetentionInventory,
  imageIds: readonly string[],
  pacer = new TokenBucketPacer(),
): Promise<RetentionInventory> {
  const references = new Map(inventory.references);
  let coverage: ImageReferencesCoverage = 'checked';
  const warnings = [...inventory.warnings];
  const client = paced(ec2, pacer);
  for (let i = 0; i < imageIds.length; i += IMAGE_REFERENCE_BATCH) {
    const batch = imageIds.slice(i, i + IMAGE_REFERENCE_BATCH);
    try {
      for await (const page of paginateDescribeImageReferences(
        { client },
        { ImageIds: batch, IncludeAllResourceTypes: true },
      )) {
        for (const ref of page.ImageReferences ?? []) {
          if (!ref.ImageId) continue;
          const list = references.get(ref.ImageId) ?? [];
          const id = ref.Arn ?? ref.ResourceType ?? 'unknown';
          if (!list.some((r) => r.id === id)) references.set(ref.ImageId, [...list, { kind: 'image-reference', id }]);
        }
      }
    } catch (error) {
      const name = awsErrorName(error);
      if (name !== 'InvalidAction' && name !== 'UnsupportedOperation') throw error;
      coverage = 'unavailable';
      warnings.push(
        `DescribeImageReferences is not available in ${inventory.region} (${name}): in-use checks rely on the instance, launch template, launch configuration and ASG scans only (SSM parameters and Image Builder recipes are not seen)`,
      );
      break;
    }
  }
  return { ...inventory, references, imageReferences: coverage, warnings };
}

async function describeSnapshots(
  ec2: EC2Client,
  pacer: TokenBucketPacer,
): Promise<{ sizes: Map<string, number>; tags: Map<string, Record<string, string>> }> {
  const sizes = new Map<string, number>();
  const tags = new Map<string, Record<string, string>>();
  for await (const page of paginateDescribeSnapshots(
    { client: paced(ec2, pacer), pageSize: 1000 },
    { OwnerIds: ['self'] },
  )) {
    for (const s of page.Snapshots ?? []) {
      if (s.SnapshotId && s.VolumeSize !== undefined) sizes.set(s.SnapshotId, s.VolumeSize);
      if (s.SnapshotId && s.Tags?.length)
        tags.set(s.SnapshotId, Object.fromEntries(s.Tags.map((t) => [t.Key ?? '', t.Value ?? ''])));
    }
  }
  return { sizes, tags };
}

async function describeLiveInstances(
  ec2: EC2Client,
  pacer: TokenBucketPacer,
): Promise<{ instanceId: string; imageId: string }[]> {
  const instances: { instanceId: string; imageId: string }[] = [];
  const pages = paginateDescribeInstances(
    { client: paced(ec2, pacer), pageSize: 1000 },
    { Filters: [{ Name: 'instance-state-name', Values: LIVE_INSTANCE_STATES }] },
  );
  for await (const page of pages) {
    for (const r of page.Reservations ?? []) {
      for (const i of r.Instances ?? [])
        if (i.InstanceId && i.ImageId) instances.push({ instanceId: i.InstanceId, imageId: i.ImageId });
    }
  }
  return instances;
}

async function describeGroups(autoScaling: AutoScalingClient): Promise<AutoScalingGroup[]> {
  const groups: AutoScalingGroup[] = [];
  for await (const page of paginateDescribeAutoScalingGroups({ client: autoScaling, pageSize: 100 }, {}))
    groups.push(...(page.AutoScalingGroups ?? []));
  return groups;
}

type AddRef = (imageId: string | undefined, ref: ImageReference) => void;
type NameTemplate = (
  kind: ReferenceKind,
  name: string,
  spec: LaunchTemplateSpecification | FleetLaunchTemplateSpecification | undefined,
) => void;

interface Template {
  name: string;
  defaultVersion?: number;
  latestVersion?: number;
  /** `$Default`, `$Latest` and every version an ASG or fleet names. */
  versions: Set<string>;
  /** The ASGs and fleets that name a version, each with the reference it gets. */
  users: { kind: ReferenceKind; name: string; version: string }[];
}

/**
 * Launch templates, launch configurations, ASGs and fleets: every launch template version something may launch
 * from, resolved to its image.
 */
async function scanTemplatesAndGroups(
  ec2: EC2Client,
  autoScaling: AutoScalingClient,
  pacer: TokenBucketPacer,
  addRef: AddRef,
  warnings: string[],
): Promise<void> {
  const configImages = await scanLaunchConfigurations(autoScaling, addRef);
  const templates = await describeTemplates(ec2, pacer);
  const named = templateNamer(templates);
  await scanGroups(autoScaling, configImages, named, addRef);
  await scanFleets(ec2, pacer, named, addRef);
  for (const [templateId, template] of templates)
    await addTemplateReferences(ec2, pacer, templateId, template, addRef, warnings);
}

/**
 * Launch configurations: every one counts, in an ASG or not (a configuration outside any group is still what
 * someone will launch from next). Returns each configuration's image, for the ASGs that use it.
 */
async function scanLaunchConfigurations(autoScaling: AutoScalingClient, addRef: AddRef): Promise<Map<string, string>> {
  const configImages = new Map<string, string>();
  for await (const page of paginateDescribeLaunchConfigurations({ client: autoScaling, pageSize: 100 }, {})) {
    for (const c of page.LaunchConfigurations ?? []) {
      if (!c.LaunchConfigurationName) continue;
      if (c.ImageId) configImages.set(c.LaunchConfigurationName, c.ImageId);
      addRef(c.ImageId, { kind: 'launch-configuration', id: c.LaunchConfigurationName });
    }
  }
  return configImages;
}

/** Every launch template by id, with `$Default` and `$Latest` as the versions to resolve so far. */
async function describeTemplates(ec2: EC2Client, pacer: TokenBucketPacer): Promise<Map<string, Template>> {
  const templates = new Map<string, Template>();
  for await (const page of paginateDescribeLaunchTemplates({ client: paced(ec2, pacer), pageSize: 200 }, {})) {
    for (const t of page.LaunchTemplates ?? []) {
      if (!t.LaunchTemplateId) continue;
      templates.set(t.LaunchTemplateId, {
        name: t.LaunchTemplateName ?? '',
        defaultVersion: t.DefaultVersionNumber,
        latestVersion: t.LatestVersionNumber,
        versions: new Set(['$Default', '$Latest']),
        users: [],
      });
    }
  }
  return templates;
}

/** Records that an ASG or fleet names a launch template version (by template id or name). */
function templateNamer(templates: Map<string, Template>): NameTemplate {
  const idByName = new Map([...templates].map(([id, t]) => [t.name, id]));
  return (kind, name, spec) => {
    if (!spec) return;
    const id = spec.LaunchTemplateId ?? idByName.get(spec.LaunchTemplateName ?? '');
    const template = id ? templates.get(id) : undefined;
    if (!template) return; // naming a template that no longer exists launches nothing from it
    const version = spec.Version ?? '$Default';
    template.versions.add(version);
    template.users.push({ kind, name, version });
  };
}

/** Every launch template version an ASG names, wherever in the group it names it, and its launch configuration. */
async function scanGroups(
  autoScaling: AutoScalingClient,
  configImages: Map<string, string>,
  named: NameTemplate,
  addRef: AddRef,
): Promise<void> {
  for (const group of await describeGroups(autoScaling)) {
    const name = group.AutoScalingGroupName ?? '?';
    if (group.LaunchConfigurationName) {
      addRef(configImages.get(group.LaunchConfigurationName), {
        kind: 'auto-scaling-group',
        id: `${name} (launch configuration ${group.LaunchConfigurationName})`,
      });
    }
    const specs: (LaunchTemplateSpecification | undefined)[] = [
      group.LaunchTemplate,
      group.MixedInstancesPolicy?.LaunchTemplate?.LaunchTemplateSpecification,
      ...(group.MixedInstancesPolicy?.LaunchTemplate?.Overrides ?? []).map((o) => o.LaunchTemplateSpecification),
    ];
    for (const spec of specs) named('auto-scaling-group', name, spec);
  }
}

/** Resolves one template's versions to their images and adds a reference for the template and for each user. */
async function addTemplateReferences(
  ec2: EC2Client,
  pacer: TokenBucketPacer,
  templateId: string,
  template: Template,
  addRef: AddRef,
  warnings: string[],
): Promise<void> {
  const numberOf = (version: string): number | undefined =>
    version === '$Default' ? template.defaultVersion : version === '$Latest' ? template.latestVersion : Number(version);
  const versions = [...template.versions];
  const imageOf = new Map<number, string | undefined>();
  try {
    if (!(await readTemplateVersions(ec2, pacer, templateId, versions, imageOf))) {
      // A version an ASG or fleet names may be gone since the listing. One missing version must not hide the
      // ones others name: ask for $Default and $Latest, then each named version on its own.
      imageOf.clear();
      const missing: string[] = [];
      for (const asked of [versions.slice(0, 2), ...versions.slice(2).map((v) => [v])])
        if (!(await readTemplateVersions(ec2, pacer, templateId, asked, imageOf))) missing.push(...asked);
      warnings.push(
        `launch template ${templateId}: a version an ASG or fleet names (${missing.join(', ')}) was not found; checked the others`,
      );
    }
  } catch (error) {
    if (!isAwsError(error, 'InvalidLaunchTemplateId.NotFound')) throw error;
    return; // deleted since the listing: launches nothing
  }
  for (const version of versions) {
    const number = numberOf(version);
    if (number === undefined || !imageOf.has(number)) continue;
    addRef(imageOf.get(number), {
      kind: 'launch-template',
      id: `${templateId}:${version}${version === String(number) ? '' : `(${number})`}`,
    });
  }
  for (const { kind, name, version } of template.users) {
    const number = numberOf(version);
    if (number !== undefined) addRef(imageOf.get(number), { kind, id: `${name} (${templateId}:${version})` });
  }
}

/** Reads these versions' images into `imageOf`; false when a version asked for does not exist. */
async function readTemplateVersions(
  ec2: EC2Client,
  pacer: TokenBucketPacer,
  templateId: string,
  asked: string[],
  imageOf: Map<number, string | undefined>,
): Promise<boolean> {
  try {
    const pages = paginateDescribeLaunchTemplateVersions(
      { client: paced(ec2, pacer) },
      { LaunchTemplateId: templateId, Versions: asked },
    );
    for await (const page of pages) {
      for (const v of page.LaunchTemplateVersions ?? [])
        if (v.VersionNumber !== undefined) imageOf.set(v.VersionNumber, v.LaunchTemplateData?.ImageId);
    }
    return true;
  } catch (error) {
    if (isAwsError(error, 'InvalidLaunchTemplateId.VersionNotFound')) return false;
    throw error;
  }
}

/**
 * EC2 Fleets and Spot Fleet requests that may still launch: the launch template versions they name go to
 * `named` (resolved with the ASGs' versions); images a fleet's overrides or a request's launch specifications
 * name go to `addRef`.
 * DescribeSpotFleetRequests has no state filter, so its states are checked here.
 */
async function scanFleets(ec2: EC2Client, pacer: TokenBucketPacer, named: NameTemplate, addRef: AddRef): Promise<void> {
  const client = paced(ec2, pacer);
  const fleets = paginateDescribeFleets(
    { client, pageSize: 1000 },
    { Filters: [{ Name: 'fleet-state', Values: LIVE_FLEET_STATES }] },
  );
  for await (const page of fleets) {
    for (const fleet of page.Fleets ?? []) {
      if (!fleet.FleetId) continue;
      for (const config of fleet.LaunchTemplateConfigs ?? []) {
        named('fleet', fleet.FleetId, config.LaunchTemplateSpecification);
        for (const o of config.Overrides ?? []) addRef(o.ImageId, { kind: 'fleet', id: `${fleet.FleetId} (override)` });
      }
    }
  }

  for await (const page of paginateDescribeSpotFleetRequests({ client, pageSize: 1000 }, {})) {
    for (const request of page.SpotFleetRequestConfigs ?? []) {
      const id = request.SpotFleetRequestId;
      if (!id || !LIVE_SPOT_FLEET_STATES.has(request.SpotFleetRequestState ?? '')) continue;
      const config = request.SpotFleetRequestConfig;
      for (const c of config?.LaunchTemplateConfigs ?? []) named('spot-fleet', id, c.LaunchTemplateSpecification);
      for (const spec of config?.LaunchSpecifications ?? [])
        addRef(spec.ImageId, { kind: 'spot-fleet', id: `${id} (launch specification)` });
    }
  }
}

/** Which sources of this region's replicas still exist: one listing per source region (pages, not images). */
async function lookUpSources(
  clients: Clients,
  images: readonly ImageRecord[],
  warnings: string[],
): Promise<LiveSources> {
  const regions = new Set<string>();
  for (const image of images) {
    const r = isReplica(image.tags) ? (image.tags[TAG.sourceRegion] ?? image.sourceImageRegion) : undefined;
    if (r) regions.add(r);
  }
  const checkedRegions: string[] = [];
  const live = new Set<string>();
  for (const r of regions) {
    try {
      const sources = await listImages(ec2Client(clients, r), r, {
        owners: ['self'],
        includeDeprecated: true,
        includeDisabled: true,
      });
      for (const s of sources) if (s.state !== 'deregistered') live.add(sourceKey(r, s.imageId));
      checkedRegions.push(r);
    } catch (error) {
      warnings.push(
        `could not list source images in ${r} (${awsErrorName(error) ?? 'Error'}: ${(error as Error).message}); replicas of its images are kept`,
      );
    }
  }
  return { checkedRegions, live };
}
