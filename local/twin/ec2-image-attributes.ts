import type { Ec2Action, Ec2Context } from './ec2-context.ts';
import { ownedImage, rejectBackupManaged, visibleImage } from './ec2-image-access.ts';
import { launchPermissionXml } from './ec2-image-xml.ts';
import type { Ec2Params } from './ec2-params.ts';
import { TwinServiceError } from './http.ts';
import { isEncrypted, isoTime, type LaunchPermissionEntry, type TwinImage } from './state.ts';

/** Image attributes and switches: launch permissions, description, deprecation, protection, disable/enable. */

const ACCOUNT_ID = /^\d{12}$/;
const ORGANIZATION_ARN = /^arn:aws[a-z-]*:organizations::\d{12}:organization\/o-[a-z0-9]{10,32}$/;
const OU_ARN = /^arn:aws[a-z-]*:organizations::\d{12}:ou\/o-[a-z0-9]{10,32}\/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$/;
const COOLDOWN_MS = 24 * 3_600_000;
const TEN_YEARS_MS = 10 * 365.25 * 86_400_000;

export const describeImageAttribute: Ec2Action = (ctx) => {
  const attribute = ctx.params.required('Attribute');
  const image = visibleImage(ctx, ctx.params.required('ImageId'));
  if (image.ownerId !== ctx.accountId && attribute === 'launchPermission') {
    throw new TwinServiceError('AuthFailure', `Not authorized for image:${image.imageId}`);
  }
  const value = (v: string | undefined) => (v === undefined ? {} : { value: v });
  const base = { imageId: image.imageId };
  switch (attribute) {
    case 'launchPermission':
      return { ...base, launchPermission: image.launchPermissions.map(launchPermissionXml) };
    case 'description':
      return { ...base, description: value(image.description) };
    case 'productCodes':
      return {
        ...base,
        productCodes: image.productCodes.map((p) => ({ productCode: p.productCodeId, type: p.productCodeType })),
      };
    case 'blockDeviceMapping':
      // Deprecated attribute: EC2 answers AuthFailure and points to DescribeImages.
      throw new TwinServiceError(
        'AuthFailure',
        'The blockDeviceMapping attribute is not available; use DescribeImages.',
      );
    case 'deregistrationProtection':
      return { ...base, deregistrationProtection: value(image.deregistrationProtection) };
    case 'lastLaunchedTime':
      return { ...base, lastLaunchedTime: value(image.lastLaunchedTime) };
    case 'kernel':
    case 'ramdisk':
    case 'sriovNetSupport':
    case 'bootMode':
    case 'tpmSupport':
    case 'uefiData':
    case 'imdsSupport':
      return { ...base, [attribute]: {} };
    default:
      throw new TwinServiceError(
        'InvalidParameterValue',
        `Value (${attribute}) for parameter attribute is invalid. Unknown attribute.`,
      );
  }
};

export const modifyImageAttribute: Ec2Action = (ctx) => {
  const { params } = ctx;
  const image = ownedImage(ctx, params.required('ImageId'));
  const description =
    params.get('Description.Value') ?? (params.get('Attribute') === 'description' ? params.get('Value') : undefined);
  if (description !== undefined) {
    if (description.length > 255)
      throw new TwinServiceError('InvalidParameterValue', 'The description must be at most 255 characters long.');
    image.description = description;
  }
  const { add, remove } = launchPermissionChanges(params);
  if (add.length === 0 && remove.length === 0) {
    if (description === undefined) throw new TwinServiceError('MissingParameter', 'No attribute change was specified.');
    return {};
  }
  if (image.state === 'disabled' && add.length > 0) {
    throw new TwinServiceError(
      'InvalidAMIID.Unavailable',
      `The image ${image.imageId} is disabled and cannot be shared. Enable it first.`,
    );
  }
  for (const entry of add) {
    if (entry.group === 'all' && isEncrypted(image)) {
      throw new TwinServiceError(
        'InvalidParameterValue',
        `Encrypted images cannot be made public: ${image.imageId} has encrypted snapshots.`,
      );
    }
    if (entry.group === 'all' && image.productCodes.length > 0) {
      throw new TwinServiceError(
        'InvalidParameterValue',
        `Images with product codes cannot be made public: ${image.imageId}.`,
      );
    }
  }
  const key = (p: LaunchPermissionEntry) =>
    `${p.userId ?? ''}|${p.group ?? ''}|${p.organizationArn ?? ''}|${p.organizationalUnitArn ?? ''}`;
  const removing = new Set(remove.map(key));
  const kept = image.launchPermissions.filter((p) => !removing.has(key(p)));
  const present = new Set(kept.map(key));
  for (const entry of add) {
    if (present.has(key(entry))) continue;
    kept.push(entry);
    present.add(key(entry));
  }
  if (kept.length > 1000)
    throw new TwinServiceError('ResourceLimitExceeded', 'An image can be shared with at most 1,000 entities.');
  image.launchPermissions = kept;
  return {};
};

/** Both spellings the API accepts: `LaunchPermission.Add.N.*` and the older `OperationType` + lists. */
function launchPermissionChanges(params: Ec2Params): { add: LaunchPermissionEntry[]; remove: LaunchPermissionEntry[] } {
  const read = (entry: Ec2Params): LaunchPermissionEntry =>
    checkPermission({
      userId: entry.get('UserId'),
      group: entry.get('Group') as LaunchPermissionEntry['group'],
      organizationArn: entry.get('OrganizationArn'),
      organizationalUnitArn: entry.get('OrganizationalUnitArn'),
    });
  const add = params.structs('LaunchPermission.Add').map(read);
  const remove = params.structs('LaunchPermission.Remove').map(read);
  const operation = params.get('OperationType');
  if (operation !== undefined) {
    if (operation !== 'add' && operation !== 'remove')
      throw new TwinServiceError(
        'InvalidParameterValue',
        `Value (${operation}) for parameter OperationType is invalid.`,
      );
    const entries: LaunchPermissionEntry[] = [
      ...params.list('UserId').map((userId) => ({ userId })),
      ...params.list('UserGroup').map((group) => ({ group: group as 'all' })),
      ...params.list('OrganizationArn').map((organizationArn) => ({ organizationArn })),
      ...params.list('OrganizationalUnitArn').map((organizationalUnitArn) => ({ organizationalUnitArn })),
    ].map(checkPermission);
    (operation === 'add' ? add : remove).push(...entries);
  }
  return { add, remove };
}

function checkPermission(entry: LaunchPermissionEntry): LaunchPermissionEntry {
  const clean = Object.fromEntries(Object.entries(entry).filter(([, v]) => v !== undefined)) as LaunchPermissionEntry;
  const kinds = Object.keys(clean).length;
  const bad = (what: string) =>
    new TwinServiceError(
      'InvalidAMIAttributeItemValue',
      `Invalid attribute item value "${what}" for launchPermission item type.`,
    );
  if (kinds !== 1) throw bad(JSON.stringify(entry));
  if (clean.userId !== undefined && !ACCOUNT_ID.test(clean.userId)) throw bad(clean.userId);
  if (clean.group !== undefined && clean.group !== 'all') throw bad(clean.group);
  if (clean.organizationArn !== undefined && !ORGANIZATION_ARN.test(clean.organizationArn))
    throw bad(clean.organizationArn);
  if (clean.organizationalUnitArn !== undefined && !OU_ARN.test(clean.organizationalUnitArn))
    throw bad(clean.organizationalUnitArn);
  return clean;
}

export const enableImageDeprecation: Ec2Action = (ctx) => {
  const image = ownedImage(ctx, ctx.params.required('ImageId'));
  const raw = ctx.params.required('DeprecateAt');
  const at = Date.parse(raw);
  if (Number.isNaN(at))
    throw new TwinServiceError('InvalidParameterValue', `Value (${raw}) for parameter DeprecateAt is invalid.`);
  // EC2 rounds to the minute.
  const rounded = Math.round(at / 60_000) * 60_000;
  const now = ctx.clock.now();
  if (rounded < now) throw new TwinServiceError('InvalidParameterValue', 'The deprecation time cannot be in the past.');
  if (rounded > now + TEN_YEARS_MS)
    throw new TwinServiceError(
      'InvalidParameterValue',
      'The deprecation time cannot be more than 10 years in the future.',
    );
  image.deprecationTime = isoTime(rounded);
  return { return: true };
};

export const disableImageDeprecation: Ec2Action = (ctx) => {
  const image = ownedImage(ctx, ctx.params.required('ImageId'));
  image.deprecationTime = undefined;
  return { return: true };
};

export const enableImageDeregistrationProtection: Ec2Action = (ctx) => {
  const image = ownedImage(ctx, ctx.params.required('ImageId'));
  image.deregistrationProtection = ctx.params.bool('WithCooldown')
    ? 'enabled-with-cooldown'
    : 'enabled-without-cooldown';
  image.protectionCooldownUntil = undefined;
  return { return: 'true' };
};

export const disableImageDeregistrationProtection: Ec2Action = (ctx) => {
  const image = ownedImage(ctx, ctx.params.required('ImageId'));
  if (image.deregistrationProtection === 'enabled-with-cooldown') {
    // Deregistration stays blocked for 24 hours; DescribeImages keeps reporting the protection until then.
    image.protectionCooldownUntil = ctx.clock.now() + COOLDOWN_MS;
    ctx.lifecycle.schedule(image.protectionCooldownUntil, () => endCooldown(ctx, image));
    return { return: 'true' };
  }
  image.deregistrationProtection = 'disabled';
  return { return: 'true' };
};

function endCooldown(ctx: Ec2Context, image: TwinImage): void {
  if (image.protectionCooldownUntil !== undefined && image.protectionCooldownUntil <= ctx.clock.now()) {
    image.deregistrationProtection = 'disabled';
    image.protectionCooldownUntil = undefined;
  }
}

export const disableImage: Ec2Action = (ctx) => {
  const image = ownedImage(ctx, ctx.params.required('ImageId'));
  rejectBackupManaged(image, 'DisableImage');
  if (image.state === 'disabled') return { return: true };
  if (image.state !== 'available') {
    throw new TwinServiceError(
      'IncorrectState',
      `The image ${image.imageId} is ${image.state}; only available images can be disabled.`,
    );
  }
  // Disabling takes away every launch permission; enabling does not give them back.
  image.launchPermissions = [];
  ctx.lifecycle.setImageState(image, 'disabled');
  return { return: true };
};

export const enableImage: Ec2Action = (ctx) => {
  const image = ownedImage(ctx, ctx.params.required('ImageId'));
  if (image.state !== 'disabled') return { return: true };
  ctx.lifecycle.setImageState(image, 'available');
  return { return: true };
};
