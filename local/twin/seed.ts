import type { Clock } from './clock.ts';
import {
  isoTime,
  type CreateVolumePermissionEntry,
  type FleetState,
  type ImageStateName,
  type InstanceStateName,
  type KmsKeyState,
  type LaunchPermissionEntry,
  type LaunchTemplateReference,
  type ProductCode,
  type SpotFleetRequestState,
  type TwinAutoScalingGroup,
  type TwinImage,
  type TwinState,
  type TwinSnapshot,
} from './state.ts';

/**
 * Direct seeding: puts resources into the twin's state without API calls, events or throttling, for tests,
 * benches and the demo. Fast enough for bulk inventories (100,000 images in a few seconds).
 */
export type TimeInput = Date | string | number;

export interface SeedKeyOptions {
  /** `alias/ami-dr` (the `alias/` prefix is added when missing). */
  alias?: string;
  state?: KmsKeyState;
  description?: string;
  multiRegion?: boolean;
  /** Accounts the owner has let use the key (a key-policy statement naming their roots), as for shared images. */
  allowAccounts?: string[];
}

export interface SeedVolume {
  sizeGiB?: number;
  encrypted?: boolean;
  /** Key id, alias or ARN; resolved to the key's ARN when the key exists in the region. */
  kmsKeyId?: string;
  /** The snapshot's tags (a copy made with snapshot TagSpecifications carries them). */
  tags?: Record<string, string>;
}

export interface SeedImageOptions {
  name: string;
  description?: string;
  tags?: Record<string, string>;
  creationDate?: TimeInput;
  rootDeviceType?: 'ebs' | 'instance-store';
  /** Instance-store images: `bucket/prefix/image.manifest.xml`. */
  imageLocation?: string;
  /** EBS images: use these existing snapshots (e.g. one snapshot shared by two images). */
  snapshotIds?: string[];
  /** EBS images: make these volumes' snapshots (default: one root volume of `sizeGiB`). */
  volumes?: SeedVolume[];
  sizeGiB?: number;
  encrypted?: boolean;
  kmsKeyId?: string;
  /** `true` = protected without cooldown. */
  deregistrationProtection?: boolean | 'with-cooldown';
  ownerId?: string;
  /** `amazon`, `aws-marketplace`, or `aws-backup-vault` for images AWS Backup manages (owner: this account). */
  imageOwnerAlias?: string;
  deprecationTime?: TimeInput;
  launchPermissions?: LaunchPermissionEntry[];
  state?: ImageStateName;
  stateReason?: { code: string; message: string };
  productCodes?: ProductCode[];
  sourceImageId?: string;
  sourceImageRegion?: string;
  lastLaunchedTime?: TimeInput;
}

export interface SeedSnapshotOptions extends SeedVolume {
  tags?: Record<string, string>;
  ownerId?: string;
  description?: string;
  startTime?: TimeInput;
  createVolumePermissions?: CreateVolumePermissionEntry[];
}

export interface SeedInstanceOptions {
  imageId: string;
  state?: InstanceStateName;
  instanceType?: string;
  tags?: Record<string, string>;
  launchTemplate?: LaunchTemplateReference;
}

export interface SeedLaunchTemplateOptions {
  name: string;
  /** One entry per version, in order (version numbers start at 1). */
  versions: { imageId?: string; instanceType?: string; description?: string }[];
  /** Default version number (default 1). */
  defaultVersion?: number;
  tags?: Record<string, string>;
}

export interface SeedAutoScalingGroupOptions {
  name: string;
  launchConfigurationName?: string;
  launchTemplate?: LaunchTemplateReference;
  mixedInstancesPolicy?: TwinAutoScalingGroup['mixedInstancesPolicy'];
  minSize?: number;
  maxSize?: number;
  desiredCapacity?: number;
  tags?: Record<string, string>;
}

/** A fleet launching from one launch template version (by id or name; version default `$Default`). */
export interface SeedFleetOptions extends LaunchTemplateReference {
  /** Default `active`. */
  state?: FleetState;
}

export interface SeedSpotFleetRequestOptions extends LaunchTemplateReference {
  /** Default `active`. */
  state?: SpotFleetRequestState;
}

export interface SeedLaunchConfigurationOptions {
  name: string;
  imageId: string;
  instanceType?: string;
}

export interface Seeder {
  key(region: string, options?: SeedKeyOptions): { keyId: string; arn: string };
  image(region: string, options: SeedImageOptions): string;
  snapshot(region: string, options?: SeedSnapshotOptions): string;
  instance(region: string, options: SeedInstanceOptions): string;
  launchTemplate(region: string, options: SeedLaunchTemplateOptions): string;
  autoScalingGroup(region: string, options: SeedAutoScalingGroupOptions): string;
  launchConfiguration(region: string, options: SeedLaunchConfigurationOptions): string;
  /** An EC2 Fleet; returns its id (`fleet-…`). */
  fleet(region: string, options: SeedFleetOptions): string;
  /** A Spot Fleet request; returns its id (`sfr-…`). */
  spotFleetRequest(region: string, options: SeedSpotFleetRequestOptions): string;
}

export function toMillis(time: TimeInput): number {
  if (typeof time === 'number') return time;
  const ms = typeof time === 'string' ? Date.parse(time) : time.getTime();
  if (Number.isNaN(ms)) throw new TypeError(`not a time: ${String(time)}`);
  return ms;
}

const tagMap = (tags: Record<string, string> = {}): Map<string, string> => new Map(Object.entries(tags));

export function createSeeder(state: TwinState, clock: Clock): Seeder {
  const account = state.accountId;

  const keyArnOrRef = (region: string, ref: string | undefined): string | undefined =>
    ref === undefined ? undefined : (state.resolve(region, ref)?.arn ?? ref);

  const snapshot = (region: string, options: SeedSnapshotOptions = {}): string => {
    const snapshotId = state.newId('snap');
    const encrypted = options.encrypted ?? options.kmsKeyId !== undefined;
    const record: TwinSnapshot = {
      snapshotId,
      region,
      ownerId: options.ownerId ?? account,
      volumeId: state.newId('vol'),
      volumeSize: options.sizeGiB ?? 8,
      encrypted,
      kmsKeyId: encrypted ? (keyArnOrRef(region, options.kmsKeyId) ?? state.defaultEbsKey(region).arn) : undefined,
      state: 'completed',
      progress: '100%',
      startTime: isoTime(options.startTime === undefined ? clock.now() : toMillis(options.startTime)),
      description: options.description ?? '',
      tags: tagMap(options.tags),
      createVolumePermissions: options.createVolumePermissions ?? [],
    };
    state.region(region).snapshots.set(snapshotId, record);
    return snapshotId;
  };

  return {
    key(region, options = {}) {
      const keyId = state.newUuid();
      const arn = state.keyArn(region, keyId);
      state.addKey({
        keyId,
        arn,
        region,
        state: options.state ?? 'Enabled',
        keyManager: 'CUSTOMER',
        keySpec: 'SYMMETRIC_DEFAULT',
        keyUsage: 'ENCRYPT_DECRYPT',
        description: options.description ?? '',
        multiRegion: options.multiRegion ?? false,
        creationDate: clock.now(),
        deletionDate: options.state === 'PendingDeletion' ? clock.now() + 7 * 86_400_000 : undefined,
        grants: [],
        ...(options.allowAccounts?.length ? { policy: allowingPolicy(arn, options.allowAccounts) } : {}),
      });
      if (options.alias) {
        const alias = options.alias.startsWith('alias/') ? options.alias : `alias/${options.alias}`;
        state.region(region).aliases.set(alias, keyId);
      }
      return { keyId, arn };
    },

    snapshot,

    image(region, options) {
      const imageId = state.newId('ami');
      const created = options.creationDate === undefined ? clock.now() : toMillis(options.creationDate);
      const rootDeviceType = options.rootDeviceType ?? 'ebs';
      const ownerId = options.ownerId ?? account;
      let snapshotIds: string[] = [];
      if (rootDeviceType === 'ebs') {
        const volumes = options.volumes ?? [
          { sizeGiB: options.sizeGiB, encrypted: options.encrypted, kmsKeyId: options.kmsKeyId },
        ];
        snapshotIds =
          options.snapshotIds ??
          volumes.map((v) =>
            snapshot(region, {
              ...v,
              ownerId,
              startTime: created,
              description: `Created by CreateImage for ${imageId}`,
            }),
          );
      }
      const snapshots = state.region(region).snapshots;
      const image: TwinImage = {
        imageId,
        region,
        ownerId,
        imageOwnerAlias: options.imageOwnerAlias,
        name: options.name,
        description: options.description,
        state: options.state ?? 'available',
        stateReason: options.stateReason,
        creationDate: isoTime(created),
        deprecationTime: options.deprecationTime === undefined ? undefined : isoTime(toMillis(options.deprecationTime)),
        deregistrationProtection:
          options.deregistrationProtection === 'with-cooldown'
            ? 'enabled-with-cooldown'
            : options.deregistrationProtection
              ? 'enabled-without-cooldown'
              : 'disabled',
        rootDeviceType,
        rootDeviceName: rootDeviceType === 'ebs' ? '/dev/xvda' : '/dev/sda1',
        imageLocation:
          rootDeviceType === 'instance-store'
            ? (options.imageLocation ?? `ami-bundles-${account}/${options.name}/image.manifest.xml`)
            : `${ownerId}/${options.name}`,
        architecture: 'x86_64',
        virtualizationType: 'hvm',
        productCodes: options.productCodes ?? [],
        blockDeviceMappings: snapshotIds.map((snapshotId, index) => {
          const snap = snapshots.get(snapshotId);
          return {
            deviceName: index === 0 ? '/dev/xvda' : `/dev/xvd${String.fromCharCode(98 + index - 1)}`,
            ebs: {
              snapshotId,
              volumeSize: snap?.volumeSize ?? 8,
              volumeType: 'gp3',
              encrypted: snap?.encrypted ?? false,
              kmsKeyId: snap?.kmsKeyId,
              deleteOnTermination: true,
            },
          };
        }),
        tags: tagMap(options.tags),
        launchPermissions: options.launchPermissions ?? [],
        sourceImageId: options.sourceImageId,
        sourceImageRegion: options.sourceImageRegion,
        lastLaunchedTime:
          options.lastLaunchedTime === undefined ? undefined : isoTime(toMillis(options.lastLaunchedTime)),
      };
      state.addImage(image);
      return imageId;
    },

    instance(region, options) {
      const instanceId = state.newId('i');
      state.region(region).instances.set(instanceId, {
        instanceId,
        region,
        imageId: options.imageId,
        state: options.state ?? 'running',
        instanceType: options.instanceType ?? 't3.micro',
        launchTime: isoTime(clock.now()),
        tags: tagMap(options.tags),
        launchTemplate: options.launchTemplate,
      });
      return instanceId;
    },

    launchTemplate(region, options) {
      const launchTemplateId = state.newId('lt');
      const createTime = isoTime(clock.now());
      state.region(region).launchTemplates.set(launchTemplateId, {
        launchTemplateId,
        launchTemplateName: options.name,
        region,
        createTime,
        defaultVersionNumber: options.defaultVersion ?? 1,
        latestVersionNumber: options.versions.length,
        versions: options.versions.map((v, i) => ({
          versionNumber: i + 1,
          createTime,
          versionDescription: v.description,
          imageId: v.imageId,
          instanceType: v.instanceType,
        })),
        tags: tagMap(options.tags),
      });
      return launchTemplateId;
    },

    autoScalingGroup(region, options) {
      state.region(region).autoScalingGroups.set(options.name, {
        autoScalingGroupName: options.name,
        region,
        createdTime: isoTime(clock.now()),
        launchConfigurationName: options.launchConfigurationName,
        launchTemplate: options.launchTemplate,
        mixedInstancesPolicy: options.mixedInstancesPolicy,
        minSize: options.minSize ?? 0,
        maxSize: options.maxSize ?? 1,
        desiredCapacity: options.desiredCapacity ?? 0,
        tags: tagMap(options.tags),
      });
      return options.name;
    },

    launchConfiguration(region, options) {
      state.region(region).launchConfigurations.set(options.name, {
        launchConfigurationName: options.name,
        region,
        imageId: options.imageId,
        instanceType: options.instanceType ?? 't3.micro',
        createdTime: isoTime(clock.now()),
      });
      return options.name;
    },

    fleet(region, { state: fleetState, ...spec }) {
      const fleetId = `fleet-${state.newUuid()}`;
      state.region(region).fleets.set(fleetId, {
        fleetId,
        region,
        state: fleetState ?? 'active',
        createTime: isoTime(clock.now()),
        launchTemplateConfigs: [spec],
      });
      return fleetId;
    },

    spotFleetRequest(region, { state: requestState, ...spec }) {
      const spotFleetRequestId = `sfr-${state.newUuid()}`;
      state.region(region).spotFleetRequests.set(spotFleetRequestId, {
        spotFleetRequestId,
        region,
        state: requestState ?? 'active',
        createTime: isoTime(clock.now()),
        launchTemplateConfigs: [spec],
      });
      return spotFleetRequestId;
    },
  };
}

function allowingPolicy(keyArn: string, accounts: string[]): string {
  const owner = keyArn.split(':')[4];
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${owner}:root` }, Action: 'kms:*', Resource: '*' },
      {
        Effect: 'Allow',
        Principal: { AWS: accounts.map((a) => `arn:aws:iam::${a}:root`) },
        Action: ['kms:Decrypt', 'kms:DescribeKey', 'kms:CreateGrant', 'kms:ReEncrypt*', 'kms:GenerateDataKey*'],
        Resource: '*',
      },
    ],
  });
}
