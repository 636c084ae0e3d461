import { createHash } from 'node:crypto';
import type { Ec2Action, Ec2Context } from './ec2-context.ts';
import { checkId } from './ec2-errors.ts';
import { imageFilter } from './ec2-filters.ts';
import {
  canSee,
  checkDescription,
  checkImageName,
  checkNameFree,
  checkTags,
  ownedImage,
  rejectBackupManaged,
  visibleImageAnywhere,
} from './ec2-image-access.ts';
import { imageXml } from './ec2-image-xml.ts';
import { pageSize } from './ec2-pages.ts';
import { TwinServiceError } from './http.ts';
import { keyAllows } from './kms-access.ts';
import {
  isoTime,
  snapshotIdsOf,
  type BlockDevice,
  type TwinImage,
  type TwinSnapshot,
  type TwinState,
} from './state.ts';

/** The AMI lifecycle actions: describe, create, register, copy, deregister. */

// ---- DescribeImages -----------------------------------------------------------------------------------------

const OWNER_ALIASES = new Set(['amazon', 'aws-marketplace', 'aws-backup-vault']);

export const describeImages: Ec2Action = (ctx) => {
  const { params } = ctx;
  const imageIds = params.list('ImageId');
  imageIds.forEach((id) => checkId('ami', id));
  const owners = params.list('Owner');
  const executableBy = params.list('ExecutableBy');
  const includeDeprecated = params.bool('IncludeDeprecated') ?? false;
  const includeDisabled = params.bool('IncludeDisabled') ?? false;
  const maxResults = pageSize(params.int('MaxResults'), 1, 1000);
  if (maxResults !== undefined && imageIds.length > 0) {
    throw new TwinServiceError(
      'InvalidParameterCombination',
      'The parameter imageIdsSet cannot be used with the parameter maxResults',
    );
  }
  const matches = imageFilter(params.filters());
  const images = ctx.state.region(ctx.region).images;
  const now = ctx.clock.now();

  const ownerMatches = (image: TwinImage): boolean =>
    owners.length === 0 ||
    owners.some((owner) =>
      owner === 'self'
        ? image.ownerId === ctx.accountId
        : OWNER_ALIASES.has(owner)
          ? image.imageOwnerAlias === owner
          : image.ownerId === owner,
    );
  const executableMatches = (image: TwinImage): boolean =>
    executableBy.length === 0 ||
    executableBy.some((who) =>
      who === 'all'
        ? image.launchPermissions.some((p) => p.group === 'all')
        : image.launchPermissions.some((p) => p.userId === (who === 'self' ? ctx.accountId : who)),
    );
  const deprecated = (image: TwinImage): boolean =>
    image.deprecationTime !== undefined && Date.parse(image.deprecationTime) <= now;
  // Owners always see their own deprecated images; others only when asked (or when naming the image).
  const shown = (image: TwinImage): boolean =>
    canSee(ctx, image) &&
    (includeDisabled || image.state !== 'disabled') &&
    (includeDeprecated || imageIds.length > 0 || image.ownerId === ctx.accountId || !deprecated(image)) &&
    ownerMatches(image) &&
    executableMatches(image) &&
    matches(image);

  if (imageIds.length > 0) {
    for (const id of imageIds) {
      const image = images.get(id);
      if (!image || !canSee(ctx, image))
        throw new TwinServiceError('InvalidAMIID.NotFound', `The image id '[${id}]' does not exist`);
    }
    return {
      imagesSet: [...new Set(imageIds)]
        .map((id) => images.get(id) as TwinImage)
        .filter(shown)
        .map(imageXml),
    };
  }
  const page = ctx.cursors.page(
    params.get('NextToken'),
    maxResults,
    () => {
      const ids: string[] = [];
      for (const image of images.values()) if (shown(image)) ids.push(image.imageId);
      return ids;
    },
    (id) => images.get(id),
  );
  return { imagesSet: page.items.map(imageXml), nextToken: page.nextToken };
};

// ---- CreateImage --------------------------------------------------------------------------------------------

export const createImage: Ec2Action = (ctx) => {
  const { params, state } = ctx;
  const instanceId = checkId('i', params.required('InstanceId'));
  const name = checkImageName(params.required('Name'));
  const description = checkDescription(params.get('Description'));
  const specs = params.tagSpecifications(['image', 'snapshot']);
  const instance = state.region(ctx.region).instances.get(instanceId);
  if (!instance || instance.state === 'terminated') {
    throw new TwinServiceError('InvalidInstanceID.NotFound', `The instance ID '${instanceId}' does not exist`);
  }
  checkNameFree(ctx, name);
  const imageTags = specs.get('image') ?? new Map<string, string>();
  const snapshotTags = specs.get('snapshot') ?? new Map<string, string>();
  checkTags(imageTags);
  checkTags(snapshotTags);

  // The new image has the volumes of the image the instance was launched from (one 8 GiB root volume otherwise).
  const base = state.region(ctx.region).images.get(instance.imageId);
  const volumes = base?.blockDeviceMappings.filter((m) => m.ebs) ?? [
    { deviceName: '/dev/xvda', ebs: { volumeSize: 8, encrypted: false } },
  ];
  const imageId = state.newId('ami');
  const now = ctx.clock.now();
  const mappings = volumes.map((volume) => {
    const snapshot = newSnapshot(ctx, {
      volumeSize: volume.ebs?.volumeSize ?? 8,
      encrypted: volume.ebs?.encrypted ?? false,
      kmsKeyId: volume.ebs?.encrypted ? snapshotKey(ctx, volume) : undefined,
      description: `Created by CreateImage(${instanceId}) for ${imageId}`,
      tags: snapshotTags,
    });
    return mapping(volume.deviceName, snapshot);
  });
  const image = newImage(ctx, imageId, name, description, {
    rootDeviceType: 'ebs',
    rootDeviceName: mappings[0]?.deviceName ?? '/dev/xvda',
    imageLocation: `${ctx.accountId}/${name}`,
    architecture: base?.architecture ?? 'x86_64',
    virtualizationType: 'hvm',
    productCodes: base?.productCodes ?? [],
    blockDeviceMappings: mappings,
    tags: new Map(imageTags),
    sourceInstanceId: instanceId,
  });
  state.addImage(image);
  ctx.lifecycle.schedule(now + ctx.settings.createDurationMs, () => completeImage(ctx, image, undefined));
  return { imageId };
};

// ---- RegisterImage ------------------------------------------------------------------------------------------

export const registerImage: Ec2Action = (ctx) => {
  const { params, state } = ctx;
  const name = checkImageName(params.required('Name'));
  const description = checkDescription(params.get('Description'));
  const imageLocation = params.get('ImageLocation');
  const specs = params.tagSpecifications(['image']);
  const tags = specs.get('image') ?? new Map<string, string>();
  checkTags(tags);
  const snapshots = state.region(ctx.region).snapshots;
  const mappings: BlockDevice[] = params.structs('BlockDeviceMapping').map((m) => {
    const deviceName = m.required('DeviceName');
    const virtualName = m.get('VirtualName');
    if (!m.has('Ebs')) return { deviceName, virtualName };
    const snapshotId = m.get('Ebs.SnapshotId');
    const snapshot = snapshotId === undefined ? undefined : snapshots.get(checkId('snap', snapshotId));
    if (
      snapshotId !== undefined &&
      (!snapshot ||
        (snapshot.ownerId !== ctx.accountId &&
          !snapshot.createVolumePermissions.some((p) => p.userId === ctx.accountId || p.group === 'all')))
    ) {
      throw new TwinServiceError('InvalidSnapshot.NotFound', `The snapshot '${snapshotId}' does not exist.`);
    }
    return {
      deviceName,
      ebs: {
        snapshotId,
        volumeSize: m.int('Ebs.VolumeSize') ?? snapshot?.volumeSize,
        volumeType: m.get('Ebs.VolumeType') ?? 'gp3',
        encrypted: snapshot?.encrypted ?? m.bool('Ebs.Encrypted') ?? false,
        kmsKeyId: snapshot?.kmsKeyId,
        deleteOnTermination: m.bool('Ebs.DeleteOnTermination') ?? true,
      },
    };
  });
  const rootDeviceName = params.get('RootDeviceName') ?? mappings[0]?.deviceName;
  const rootMapping = mappings.find((m) => m.deviceName === rootDeviceName);
  const ebsBacked = rootMapping?.ebs?.snapshotId !== undefined;
  if (!ebsBacked && imageLocation === undefined) {
    throw new TwinServiceError(
      'InvalidParameterCombination',
      'Either ImageLocation or a root device mapping with an EBS snapshot is required',
    );
  }
  if (ebsBacked && imageLocation !== undefined && !imageLocation.startsWith(`${ctx.accountId}/`)) {
    throw new TwinServiceError('InvalidParameterCombination', 'ImageLocation cannot be used with an EBS root device');
  }
  if (!ebsBacked && !/^[^/]+\/.+\.manifest\.xml$/.test(imageLocation ?? '')) {
    throw new TwinServiceError(
      'InvalidManifest',
      `The manifest location '${imageLocation}' is not of the form bucket/path/name.manifest.xml`,
    );
  }
  checkNameFree(ctx, name);
  const imageId = state.newId('ami');
  const image = newImage(ctx, imageId, name, description, {
    rootDeviceType: ebsBacked ? 'ebs' : 'instance-store',
    rootDeviceName: rootDeviceName ?? '/dev/sda1',
    imageLocation: ebsBacked ? `${ctx.accountId}/${name}` : imageLocation,
    architecture: params.get('Architecture') ?? 'x86_64',
    virtualizationType: params.get('VirtualizationType') === 'paravirtual' ? 'paravirtual' : 'hvm',
    productCodes: [],
    blockDeviceMappings: mappings,
    tags: new Map(tags),
  });
  state.addImage(image);
  // Registration has nothing to copy: the image is usable at once (and says so, as EC2 does).
  ctx.lifecycle.setImageState(image, 'available');
  return { imageId };
};

// ---- CopyImage ----------------------------------------------------------------------------------------------

export const copyImage: Ec2Action = (ctx) => {
  const { params, state } = ctx;
  const region = state.region(ctx.region);
  const clientToken = params.get('ClientToken');
  const fingerprint = createHash('sha256')
    .update(JSON.stringify(params.entries().filter(([k]) => !['ClientToken', 'Action', 'Version'].includes(k))))
    .digest('hex');
  if (clientToken !== undefined) {
    if (clientToken.length > 64)
      throw new TwinServiceError('InvalidParameterValue', 'ClientToken must be at most 64 ASCII characters');
    const previous = region.copyTokens.get(clientToken);
    if (previous) {
      if (previous.fingerprint !== fingerprint) {
        throw new TwinServiceError(
          'IdempotentParameterMismatch',
          `The client token ${clientToken} was already used with different parameters.`,
        );
      }
      return { imageId: previous.imageId };
    }
  }

  const sourceRegion = params.required('SourceRegion');
  const sourceImageId = checkId('ami', params.required('SourceImageId'));
  const name = checkImageName(params.required('Name'));
  const description = checkDescription(params.get('Description'));
  if (params.get('DestinationOutpostArn') !== undefined) {
    throw new TwinServiceError('UnsupportedOperation', 'Copies to an Outpost are not supported by this endpoint.');
  }
  if (
    params.get('DestinationAvailabilityZone') !== undefined ||
    params.get('DestinationAvailabilityZoneId') !== undefined
  ) {
    throw new TwinServiceError('UnsupportedOperation', 'Copies to a Local Zone are not supported by this endpoint.');
  }
  const encryptedParam = params.bool('Encrypted') ?? false;
  const kmsKeyId = params.get('KmsKeyId');
  if (kmsKeyId !== undefined && !encryptedParam) {
    throw new TwinServiceError('InvalidParameterCombination', 'KmsKeyId can only be specified when Encrypted is true.');
  }
  const durationMinutes = params.int('SnapshotCopyCompletionDurationMinutes');
  if (durationMinutes !== undefined && (durationMinutes < 15 || durationMinutes > 2880 || durationMinutes % 15 !== 0)) {
    throw new TwinServiceError(
      'InvalidParameterValue',
      `SnapshotCopyCompletionDurationMinutes must be between 15 and 2880 in increments of 15, got ${durationMinutes}.`,
    );
  }
  const specs = params.tagSpecifications(['image', 'snapshot']);
  const imageTagsAsked = specs.get('image') ?? new Map<string, string>();
  const snapshotTags = specs.get('snapshot') ?? new Map<string, string>();
  checkTags(imageTagsAsked);
  checkTags(snapshotTags);

  if (!state.regionNames().includes(sourceRegion) && !/^[a-z]{2}(-[a-z]+)+-\d$/.test(sourceRegion)) {
    throw new TwinServiceError('InvalidParameterValue', `Invalid source region: ${sourceRegion}`);
  }
  const { image: source, state: sourceState } = visibleImageAnywhere(ctx, sourceImageId, sourceRegion);
  if (source.ownerId !== ctx.accountId) checkSharedStorage(ctx, source, sourceState);
  if (source.state !== 'available') {
    throw new TwinServiceError(
      'InvalidAMIID.Unavailable',
      `The image id '[${sourceImageId}]' is not available (state: ${source.state}).`,
    );
  }
  if (source.rootDeviceType === 'instance-store' && encryptedParam) {
    throw new TwinServiceError(
      'InvalidParameterCombination',
      'Encryption is not supported when copying instance store-backed AMIs.',
    );
  }
  checkNameFree(ctx, name);
  if (region.copiesInFlight >= ctx.settings.copyQuota) {
    throw new TwinServiceError(
      'ResourceLimitExceeded',
      `You have reached the maximum number of concurrent AMI copies (${ctx.settings.copyQuota}) in ${ctx.region}. Wait for copies to complete and try again.`,
    );
  }

  const imageId = state.newId('ami');
  const now = ctx.clock.now();
  const durationMs = durationMinutes !== undefined ? durationMinutes * 60_000 : ctx.settings.copyDurationMs;
  // Encrypted sources stay encrypted (their key does not exist here: the region's default EBS key unless one is given).
  const keyRef =
    kmsKeyId ??
    (encryptedParam || source.blockDeviceMappings.some((m) => m.ebs?.encrypted) ? 'alias/aws/ebs' : undefined);
  const keyArn = keyRef === undefined ? undefined : (state.resolve(ctx.region, keyRef)?.arn ?? keyRef);
  const mappings = source.blockDeviceMappings.map((m): BlockDevice => {
    if (!m.ebs?.snapshotId) return { ...m, ebs: m.ebs && { ...m.ebs } };
    const encrypted = encryptedParam || m.ebs.encrypted === true;
    const snapshot = newSnapshot(ctx, {
      volumeSize: m.ebs.volumeSize ?? 8,
      encrypted,
      kmsKeyId: encrypted ? keyArn : undefined,
      description: `Copied for DestinationAmi ${imageId} from SourceAmi ${sourceImageId} for SourceSnapshot ${m.ebs.snapshotId}. Task created on ${isoTime(now)}.`,
      tags: snapshotTags,
      completionDurationMinutes: durationMinutes,
    });
    const copied = mapping(m.deviceName, snapshot);
    return {
      deviceName: copied.deviceName,
      ebs: {
        ...copied.ebs,
        volumeType: m.ebs.volumeType ?? 'gp3',
        deleteOnTermination: m.ebs.deleteOnTermination ?? true,
      },
    };
  });
  const tags = new Map<string, string>();
  if (params.bool('CopyImageTags') && source.ownerId === ctx.accountId) {
    for (const [key, value] of source.tags) if (!key.startsWith('aws:')) tags.set(key, value);
  }
  for (const [key, value] of imageTagsAsked) tags.set(key, value);

  const image = newImage(ctx, imageId, name, description, {
    rootDeviceType: source.rootDeviceType,
    rootDeviceName: source.rootDeviceName,
    imageLocation:
      source.rootDeviceType === 'instance-store'
        ? `amis-for-${ctx.accountId}-in-${ctx.region}-${createHash('sha256')
            .update(ctx.accountId + ctx.region)
            .digest('hex')
            .slice(0, 8)}/${imageId}/image.manifest.xml`
        : `${ctx.accountId}/${name}`,
    architecture: source.architecture,
    virtualizationType: source.virtualizationType,
    productCodes: source.productCodes.map((p) => ({ ...p })),
    blockDeviceMappings: mappings,
    tags,
    sourceImageId,
    sourceImageRegion: sourceRegion,
    copyInFlight: true,
  });
  state.addImage(image);
  region.copiesInFlight++;
  if (clientToken !== undefined) region.copyTokens.set(clientToken, { imageId, fingerprint });
  if (source.rootDeviceType === 'instance-store' && source.imageLocation && image.imageLocation)
    ctx.copyBundle?.(source.imageLocation, image.imageLocation);
  ctx.lifecycle.schedule(now + durationMs, () => {
    // The key is checked when the copy needs it, at the end: EC2 accepts the call and fails the image later.
    const failure = copyFailure(ctx, keyRef) ?? sourceKeyFailure(ctx, source, sourceState);
    completeImage(ctx, image, failure);
  });
  return { imageId };
};

/**
 * Copying another account's AMI reads its storage: the owner must have shared the AMI's snapshots with the copying
 * account (createVolumePermission), as the user guide's cross-account copy section says; EC2 refuses otherwise.
 */
function checkSharedStorage(ctx: Ec2Context, source: TwinImage, sourceState: TwinState): void {
  for (const snapshotId of snapshotIdsOf(source)) {
    const snapshot = sourceState.region(source.region).snapshots.get(snapshotId);
    const readable = snapshot?.createVolumePermissions.some((p) => p.group === 'all' || p.userId === ctx.accountId);
    if (!readable)
      throw new TwinServiceError('InvalidRequest', 'You do not have permission to access the storage of this ami');
  }
}

/**
 * Another account's encrypted source is read under its owner's key: the key policy or a grant must let the copying
 * principal decrypt it and create the grant EBS uses (KMS developer guide: key-policy-modifying-external-accounts,
 * grants). An AWS-managed key (`aws/ebs`) allows no other account. Like the destination key, checked at the end.
 */
function sourceKeyFailure(
  ctx: Ec2Context,
  source: TwinImage,
  sourceState: TwinState,
): { code: string; message: string } | undefined {
  if (source.ownerId === ctx.accountId) return undefined;
  const principal = {
    accountId: ctx.caller.accountId,
    arns: [ctx.caller.arn, ...(ctx.caller.roleArn ? [ctx.caller.roleArn] : [])],
  };
  for (const snapshotId of snapshotIdsOf(source)) {
    const keyArn = sourceState.region(source.region).snapshots.get(snapshotId)?.kmsKeyId;
    if (!keyArn) continue;
    const resolved = sourceState.resolve(source.region, keyArn);
    const key = resolved && sourceState.region(source.region).keys.get(resolved.keyId);
    const usable =
      key &&
      key.keyManager !== 'AWS' &&
      ['kms:Decrypt', 'kms:CreateGrant'].every((action) => keyAllows(key, sourceState.accountId, principal, action));
    if (!usable)
      return {
        code: 'Client.InvalidKMSKey.InvalidState',
        message: `Client.InvalidKMSKey.InvalidState: The KMS key ${keyArn} of the source snapshot ${snapshotId} is not accessible to ${ctx.caller.arn}.`,
      };
  }
  return undefined;
}

function copyFailure(ctx: Ec2Context, keyRef: string | undefined): { code: string; message: string } | undefined {
  const injected = ctx.settings.failCopies.get(ctx.region);
  if (injected !== undefined) return { code: 'Server.InternalError', message: `Server.InternalError: ${injected}` };
  if (keyRef === undefined) return undefined;
  const key = ctx.state.resolve(ctx.region, keyRef);
  if (!key) {
    return {
      code: 'Client.InvalidKMSKey.NotFound',
      message: `Client.InvalidKMSKey.NotFound: The KMS key ${keyRef} does not exist in ${ctx.region} or is not accessible.`,
    };
  }
  if (key.state !== 'Enabled') {
    const what = key.state === 'Disabled' ? 'is disabled' : 'is pending deletion';
    return {
      code: 'Client.InvalidKMSKey.InvalidState',
      message: `Client.InvalidKMSKey.InvalidState: The KMS key ${key.arn} ${what}.`,
    };
  }
  return undefined;
}

/** Ends a pending image (copy or create): available with completed snapshots, or failed with its reason. */
function completeImage(
  ctx: Ec2Context,
  image: TwinImage,
  failure: { code: string; message: string } | undefined,
): void {
  const current = ctx.state.region(image.region).images.get(image.imageId);
  if (current !== image || image.state !== 'pending') return; // deregistered meanwhile
  endCopy(ctx, image);
  const snapshots = ctx.state.region(image.region).snapshots;
  for (const snapshotId of snapshotIdsOf(image)) {
    const snapshot = snapshots.get(snapshotId);
    if (!snapshot || snapshot.state !== 'pending') continue;
    snapshot.state = failure ? 'error' : 'completed';
    snapshot.progress = failure ? snapshot.progress : '100%';
    snapshot.stateMessage = failure?.message;
    snapshot.completionTime = failure ? undefined : isoTime(ctx.clock.now());
  }
  ctx.lifecycle.setImageState(image, failure ? 'failed' : 'available', failure);
}

// ---- DeregisterImage ----------------------------------------------------------------------------------------

export const deregisterImage: Ec2Action = (ctx) => {
  const image = ownedImage(ctx, ctx.params.required('ImageId'));
  rejectBackupManaged(image, 'DeregisterImage');
  const cooldown = image.protectionCooldownUntil !== undefined && image.protectionCooldownUntil > ctx.clock.now();
  if (image.deregistrationProtection !== 'disabled' || cooldown) {
    throw new TwinServiceError(
      'OperationNotPermitted',
      `The image ${image.imageId} cannot be deregistered because deregistration protection is enabled${cooldown ? ' (cooldown period in effect)' : ''}.`,
    );
  }
  const deleteSnapshots = ctx.params.bool('DeleteAssociatedSnapshots') ?? false;
  ctx.state.removeImage(ctx.region, image.imageId);
  endCopy(ctx, image);
  ctx.lifecycle.setImageState(image, 'deregistered');
  if (!deleteSnapshots) return { return: true };
  const snapshots = ctx.state.region(ctx.region).snapshots;
  const fault = ctx.settings.snapshotDeleteFault;
  const faulty = () => fault !== undefined && fault.random() < fault.probability;
  if (fault?.mode === 'omit-results' && faulty()) return { return: true };
  const results = snapshotIdsOf(image).map((snapshotId) => {
    if (fault?.mode === 'internal-error' && faulty()) return { snapshotId, returnCode: 'internal-error' };
    const snapshot = snapshots.get(snapshotId);
    if (!snapshot) return { snapshotId, returnCode: 'client-error' };
    // EC2 deletes each snapshot as the caller: without ec2:DeleteSnapshot on it, the image goes and the snapshot stays.
    if (snapshot.ownerId !== ctx.accountId || ctx.mayDeleteSnapshot?.(snapshotId) === false)
      return { snapshotId, returnCode: 'missing-permissions' };
    if (ctx.state.imagesUsingSnapshot(ctx.region, snapshotId).length > 0) return { snapshotId, returnCode: 'skipped' };
    snapshots.delete(snapshotId);
    return { snapshotId, returnCode: 'success' };
  });
  return { return: true, deleteSnapshotResultSet: results };
};

// ---- helpers ------------------------------------------------------------------------------------------------

/** A copy stops counting against the quota when it settles or is deregistered while pending. */
function endCopy(ctx: Ec2Context, image: TwinImage): void {
  if (!image.copyInFlight) return;
  image.copyInFlight = undefined;
  ctx.state.region(image.region).copiesInFlight--;
}

/** The fields every image made by a call shares: the caller's, pending, unprotected, shared with no one, made now. */
function newImage(
  ctx: Ec2Context,
  imageId: string,
  name: string,
  description: string | undefined,
  fields: Omit<
    TwinImage,
    | 'imageId'
    | 'region'
    | 'ownerId'
    | 'name'
    | 'description'
    | 'state'
    | 'creationDate'
    | 'deregistrationProtection'
    | 'launchPermissions'
  >,
): TwinImage {
  return {
    imageId,
    region: ctx.region,
    ownerId: ctx.accountId,
    name,
    description,
    state: 'pending',
    creationDate: isoTime(ctx.clock.now()),
    deregistrationProtection: 'disabled',
    ...fields,
    launchPermissions: [],
  };
}

function newSnapshot(
  ctx: Ec2Context,
  options: {
    volumeSize: number;
    encrypted: boolean;
    kmsKeyId?: string;
    description: string;
    tags: Map<string, string>;
    completionDurationMinutes?: number;
  },
): TwinSnapshot {
  const snapshot: TwinSnapshot = {
    snapshotId: ctx.state.newId('snap'),
    region: ctx.region,
    ownerId: ctx.accountId,
    volumeId: 'vol-ffffffff',
    volumeSize: options.volumeSize,
    encrypted: options.encrypted,
    kmsKeyId: options.kmsKeyId,
    state: 'pending',
    progress: '0%',
    startTime: isoTime(ctx.clock.now()),
    description: options.description,
    tags: new Map(options.tags),
    createVolumePermissions: [],
    completionDurationMinutes: options.completionDurationMinutes,
  };
  ctx.state.region(ctx.region).snapshots.set(snapshot.snapshotId, snapshot);
  return snapshot;
}

function mapping(deviceName: string, snapshot: TwinSnapshot): BlockDevice {
  return {
    deviceName,
    ebs: {
      snapshotId: snapshot.snapshotId,
      volumeSize: snapshot.volumeSize,
      volumeType: 'gp3',
      encrypted: snapshot.encrypted,
      kmsKeyId: snapshot.kmsKeyId,
      deleteOnTermination: true,
    },
  };
}

function snapshotKey(ctx: Ec2Context, volume: BlockDevice): string | undefined {
  const snapshotId = volume.ebs?.snapshotId;
  const snapshot = snapshotId === undefined ? undefined : ctx.state.region(ctx.region).snapshots.get(snapshotId);
  return snapshot?.kmsKeyId ?? volume.ebs?.kmsKeyId ?? ctx.state.defaultEbsKey(ctx.region).arn;
}
