/**
 * The twin's in-memory account: one `RegionState` per region, created on first use. Every service module of the
 * twin (EC2, KMS, Auto Scaling, ...) reads and writes these collections; the seeding API fills them directly.
 * Records are plain mutable objects: the twin is single-threaded and the HTTP layer serializes them on the way out.
 */

export type ImageStateName =
  'pending' | 'available' | 'invalid' | 'deregistered' | 'transient' | 'failed' | 'error' | 'disabled';

/** As DescribeImages reports it (`DeregistrationProtection`). */
export type DeregistrationProtectionValue = 'disabled' | 'enabled-with-cooldown' | 'enabled-without-cooldown';

export interface LaunchPermissionEntry {
  userId?: string;
  group?: 'all';
  organizationArn?: string;
  organizationalUnitArn?: string;
}

export interface CreateVolumePermissionEntry {
  userId?: string;
  group?: 'all';
}

export interface BlockDevice {
  deviceName: string;
  /** Instance-store volumes (`ephemeral0`) have a virtual name and no EBS part. */
  virtualName?: string;
  ebs?: {
    snapshotId?: string;
    volumeSize?: number;
    volumeType?: string;
    encrypted?: boolean;
    kmsKeyId?: string;
    deleteOnTermination?: boolean;
  };
}

export interface ProductCode {
  productCodeId: string;
  productCodeType: 'devpay' | 'marketplace';
}

export interface TwinImage {
  imageId: string;
  region: string;
  ownerId: string;
  /** `amazon`, `aws-marketplace`, `aws-backup-vault` (images AWS Backup manages in the account), or none. */
  imageOwnerAlias?: string;
  name: string;
  description?: string;
  state: ImageStateName;
  stateReason?: { code: string; message: string };
  /** ISO 8601 with milliseconds, as EC2 prints it. */
  creationDate: string;
  deprecationTime?: string;
  deregistrationProtection: DeregistrationProtectionValue;
  /** Epoch ms until which a disabled-with-cooldown protection still blocks deregistration. */
  protectionCooldownUntil?: number;
  rootDeviceType: 'ebs' | 'instance-store';
  rootDeviceName: string;
  /** `bucket/prefix/image.manifest.xml` for instance-store images; `<owner>/<name>` for EBS ones. */
  imageLocation?: string;
  architecture: string;
  virtualizationType: 'hvm' | 'paravirtual';
  productCodes: ProductCode[];
  blockDeviceMappings: BlockDevice[];
  tags: Map<string, string>;
  launchPermissions: LaunchPermissionEntry[];
  sourceImageId?: string;
  sourceImageRegion?: string;
  sourceInstanceId?: string;
  lastLaunchedTime?: string;
  /** Set for images made by CopyImage until they settle: counts against the concurrent-copy quota. */
  copyInFlight?: boolean;
}

export type SnapshotStateName = 'pending' | 'completed' | 'error' | 'recoverable' | 'recovering';

export interface TwinSnapshot {
  snapshotId: string;
  region: string;
  ownerId: string;
  ownerAlias?: string;
  volumeId: string;
  volumeSize: number;
  encrypted: boolean;
  kmsKeyId?: string;
  state: SnapshotStateName;
  stateMessage?: string;
  progress: string;
  startTime: string;
  completionTime?: string;
  description: string;
  tags: Map<string, string>;
  createVolumePermissions: CreateVolumePermissionEntry[];
  completionDurationMinutes?: number;
}

export type InstanceStateName = 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopping' | 'stopped';

export interface TwinInstance {
  instanceId: string;
  region: string;
  imageId: string;
  state: InstanceStateName;
  instanceType: string;
  launchTime: string;
  tags: Map<string, string>;
  launchTemplate?: LaunchTemplateReference;
  /** The account that launched it, when not the twin's (an account an image was shared with). */
  ownerId?: string;
  /** Why it stopped, e.g. `Client.InvalidKMSKey.InvalidState` when its volumes' key may not be used. */
  stateReason?: { code: string; message: string };
  /** Epoch ms it reached `running`: status checks report `initializing` for a while after. */
  runningSince?: number;
  /** Set when its OS does not come up (injected): the instance status check ends `impaired`. */
  bootFailure?: string;
  /** `stop` (default) or `terminate`: what an OS-initiated shutdown does. */
  shutdownBehavior?: 'stop' | 'terminate';
}

export interface LaunchTemplateReference {
  launchTemplateId?: string;
  launchTemplateName?: string;
  /** A number, `$Latest` or `$Default`. */
  version?: string;
}

export interface TwinLaunchTemplateVersion {
  versionNumber: number;
  createTime: string;
  versionDescription?: string;
  /** The image the version launches; may be an `resolve:ssm:` parameter in real accounts. */
  imageId?: string;
  instanceType?: string;
}

export interface TwinLaunchTemplate {
  launchTemplateId: string;
  launchTemplateName: string;
  region: string;
  createTime: string;
  defaultVersionNumber: number;
  latestVersionNumber: number;
  versions: TwinLaunchTemplateVersion[];
  tags: Map<string, string>;
}

export interface TwinAutoScalingGroup {
  autoScalingGroupName: string;
  region: string;
  createdTime: string;
  launchConfigurationName?: string;
  launchTemplate?: LaunchTemplateReference;
  mixedInstancesPolicy?: {
    launchTemplate: {
      launchTemplateSpecification: LaunchTemplateReference;
      overrides?: { instanceType?: string; launchTemplateSpecification?: LaunchTemplateReference }[];
    };
  };
  minSize: number;
  maxSize: number;
  desiredCapacity: number;
  tags: Map<string, string>;
}

export type FleetState =
  'submitted' | 'active' | 'deleted' | 'failed' | 'deleted_running' | 'deleted_terminating' | 'modifying';
export type SpotFleetRequestState =
  'submitted' | 'active' | 'cancelled' | 'failed' | 'cancelled_running' | 'cancelled_terminating' | 'modifying';

/** An EC2 Fleet (CreateFleet); deleted fleets stay describable for a while, as on AWS. */
export interface TwinFleet {
  fleetId: string;
  region: string;
  state: FleetState;
  createTime: string;
  launchTemplateConfigs: LaunchTemplateReference[];
}

/** A Spot Fleet request (RequestSpotFleet) that launches from launch templates. */
export interface TwinSpotFleetRequest {
  spotFleetRequestId: string;
  region: string;
  state: SpotFleetRequestState;
  createTime: string;
  launchTemplateConfigs: LaunchTemplateReference[];
}

export interface TwinLaunchConfiguration {
  launchConfigurationName: string;
  region: string;
  imageId: string;
  instanceType: string;
  createdTime: string;
}

export type KmsKeyState = 'Enabled' | 'Disabled' | 'PendingDeletion';

export interface TwinKmsGrant {
  grantId: string;
  grantToken: string;
  granteePrincipal: string;
  operations: string[];
  name?: string;
}

export interface TwinKmsKey {
  keyId: string;
  arn: string;
  region: string;
  state: KmsKeyState;
  keyManager: 'AWS' | 'CUSTOMER';
  keySpec: string;
  keyUsage: string;
  description: string;
  multiRegion: boolean;
  /** Epoch ms. */
  creationDate: number;
  /** Epoch ms; set while PendingDeletion. */
  deletionDate?: number;
  grants: TwinKmsGrant[];
  /** The key policy document (JSON); unset: the default policy (the owner account's root may do everything). */
  policy?: string;
}

export interface ResolvedKey {
  keyId: string;
  arn: string;
  state: KmsKeyState;
}

/** How the rest of the twin (EC2 copies, seeding) finds keys, whatever module serves the KMS API. */
export interface KeyStore {
  /** A key id, `alias/name`, key ARN or alias ARN, looked up in `region` only (keys are regional). */
  resolve(region: string, keyIdOrAliasOrArn: string): ResolvedKey | undefined;
}

/** Everything one region holds. Collections for other services are filled by their own twin modules and seeds. */
export class RegionState {
  readonly images = new Map<string, TwinImage>();
  readonly snapshots = new Map<string, TwinSnapshot>();
  readonly instances = new Map<string, TwinInstance>();
  /** By launch template id. */
  readonly launchTemplates = new Map<string, TwinLaunchTemplate>();
  /** By group name. */
  readonly autoScalingGroups = new Map<string, TwinAutoScalingGroup>();
  /** By launch configuration name. */
  readonly launchConfigurations = new Map<string, TwinLaunchConfiguration>();
  /** By fleet id. */
  readonly fleets = new Map<string, TwinFleet>();
  /** By spot fleet request id. */
  readonly spotFleetRequests = new Map<string, TwinSpotFleetRequest>();
  /** By key id. */
  readonly keys = new Map<string, TwinKmsKey>();
  /** Alias name (`alias/ami-dr`) to key id. */
  readonly aliases = new Map<string, string>();
  /** CopyImage ClientToken to the copy it made and the parameters it was made with. */
  readonly copyTokens = new Map<string, { imageId: string; fingerprint: string }>();
  /** Images made by CopyImage that are still pending (the concurrent-copy quota counts these). */
  copiesInFlight = 0;
  /** How many images use each snapshot (kept in step by `TwinState.indexImage` / `unindexImage`). */
  readonly snapshotUsers = new Map<string, Set<string>>();

  constructor(readonly region: string) {}
}

const ID_MULTIPLIER = 0x9e3779b97f4a7c15n;
const MASK_64 = (1n << 64n) - 1n;

export class TwinState implements KeyStore {
  private readonly regions = new Map<string, RegionState>();
  private counter = 0n;

  /** `now` dates what the state makes by itself (the AWS-managed EBS key); seeding and actions pass their own times. */
  constructor(
    readonly accountId: string,
    private readonly now: () => number = () => 0,
    /** Another account's state on the same twin: ids come from one counter, so no two accounts' ids collide. */
    private readonly ids?: TwinState,
  ) {}

  region(name: string): RegionState {
    let state = this.regions.get(name);
    if (!state) {
      state = new RegionState(name);
      this.regions.set(name, state);
    }
    return state;
  }

  regionNames(): string[] {
    return [...this.regions.keys()];
  }

  /**
   * A new resource id in EC2's long format (`ami-` + 17 hex digits). Deterministic for a given twin (a counter
   * scrambled by a bijection, so ids look like AWS's and never collide).
   */
  newId(prefix: string): string {
    if (this.ids) return this.ids.newId(prefix);
    this.counter += 1n;
    const scrambled = (this.counter * ID_MULTIPLIER) & MASK_64;
    return `${prefix}-0${scrambled.toString(16).padStart(16, '0')}`;
  }

  /**
   * Moves this twin's ids to their own range (the n-th account of several twins): resource ids are unique across
   * accounts on AWS, and ami-dr names executions after them.
   */
  idRange(n: number): void {
    this.counter = BigInt(n) << 40n;
  }

  /** A UUID-shaped id (KMS key ids), deterministic like `newId`. */
  newUuid(): string {
    const hex = this.newId('x').slice(3) + this.newId('x').slice(3);
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
  }

  addImage(image: TwinImage): void {
    const region = this.region(image.region);
    region.images.set(image.imageId, image);
    this.indexImage(image);
  }

  /** Removes the image and returns it; its snapshots stay (as on AWS). */
  removeImage(regionName: string, imageId: string): TwinImage | undefined {
    const region = this.region(regionName);
    const image = region.images.get(imageId);
    if (!image) return undefined;
    region.images.delete(imageId);
    this.unindexImage(image);
    return image;
  }

  /** Images registered with this snapshot (any state but deregistered). */
  imagesUsingSnapshot(regionName: string, snapshotId: string): string[] {
    return [...(this.region(regionName).snapshotUsers.get(snapshotId) ?? [])];
  }

  private indexImage(image: TwinImage): void {
    const users = this.region(image.region).snapshotUsers;
    for (const snapshotId of snapshotIdsOf(image)) {
      let set = users.get(snapshotId);
      if (!set) users.set(snapshotId, (set = new Set()));
      set.add(image.imageId);
    }
  }

  private unindexImage(image: TwinImage): void {
    const users = this.region(image.region).snapshotUsers;
    for (const snapshotId of snapshotIdsOf(image)) {
      const set = users.get(snapshotId);
      set?.delete(image.imageId);
      if (set?.size === 0) users.delete(snapshotId);
    }
  }

  // ---- KMS key store ------------------------------------------------------------------------------------

  addKey(key: TwinKmsKey): void {
    this.region(key.region).keys.set(key.keyId, key);
  }

  keyArn(region: string, keyId: string): string {
    return `arn:aws:kms:${region}:${this.accountId}:key/${keyId}`;
  }

  resolve(regionName: string, keyIdOrAliasOrArn: string): ResolvedKey | undefined {
    const region = this.region(regionName);
    let ref = keyIdOrAliasOrArn;
    if (ref.startsWith('arn:')) {
      // arn:aws:kms:<region>:<account>:key/<id> | alias/<name>
      const [, , , arnRegion, account, resource] = ref.split(':');
      if (arnRegion !== regionName || account !== this.accountId || !resource) return undefined;
      ref = resource.startsWith('key/') ? resource.slice(4) : resource;
    }
    if (ref === 'alias/aws/ebs') this.defaultEbsKey(regionName);
    const keyId = ref.startsWith('alias/') ? region.aliases.get(ref) : ref;
    const key = keyId === undefined ? undefined : region.keys.get(keyId);
    return key ? { keyId: key.keyId, arn: key.arn, state: key.state } : undefined;
  }

  /** The AWS-managed `aws/ebs` key of a region, made the first time something needs it (as AWS does). */
  defaultEbsKey(regionName: string): TwinKmsKey {
    const region = this.region(regionName);
    const existing = region.aliases.get('alias/aws/ebs');
    const found = existing === undefined ? undefined : region.keys.get(existing);
    if (found) return found;
    const keyId = this.newUuid();
    const key: TwinKmsKey = {
      keyId,
      arn: this.keyArn(regionName, keyId),
      region: regionName,
      state: 'Enabled',
      keyManager: 'AWS',
      keySpec: 'SYMMETRIC_DEFAULT',
      keyUsage: 'ENCRYPT_DECRYPT',
      description: 'Default key that protects my EBS volumes when no other key is defined',
      multiRegion: false,
      creationDate: this.now(),
      grants: [],
    };
    this.addKey(key);
    region.aliases.set('alias/aws/ebs', keyId);
    return key;
  }
}

export function snapshotIdsOf(image: TwinImage): string[] {
  const ids: string[] = [];
  for (const mapping of image.blockDeviceMappings) if (mapping.ebs?.snapshotId) ids.push(mapping.ebs.snapshotId);
  return ids;
}

export function isPublic(image: TwinImage): boolean {
  return image.launchPermissions.some((p) => p.group === 'all');
}

export function isEncrypted(image: TwinImage): boolean {
  return image.blockDeviceMappings.some((m) => m.ebs?.encrypted === true);
}

/** EC2 prints times as `2026-01-01T00:00:00.000Z`. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}
