import type { Ec2Context } from './ec2-context.ts';
import { checkId } from './ec2-errors.ts';
import { TwinServiceError } from './http.ts';
import { isPublic, type TwinImage, type TwinState } from './state.ts';

/** Who may see and change an image, and how an image looks on the wire. */

export function canSee(ctx: Pick<Ec2Context, 'accountId'>, image: TwinImage): boolean {
  return (
    image.ownerId === ctx.accountId ||
    isPublic(image) ||
    image.launchPermissions.some((p) => p.userId === ctx.accountId)
  );
}

/** An image the caller can see, or `InvalidAMIID.NotFound` (EC2 does not reveal images you cannot see). */
export function visibleImage(ctx: Ec2Context, imageId: string, region = ctx.region): TwinImage {
  checkId('ami', imageId);
  const image = ctx.state.region(region).images.get(imageId);
  if (!image || !canSee(ctx, image))
    throw new TwinServiceError('InvalidAMIID.NotFound', `The image id '[${imageId}]' does not exist`);
  return image;
}

/**
 * An image the caller can see, in its own account's state or, shared with it, in its owner's (another account
 * on the twin), with the state that holds it; or `InvalidAMIID.NotFound`.
 */
export function visibleImageAnywhere(
  ctx: Ec2Context,
  imageId: string,
  region: string,
): { image: TwinImage; state: TwinState } {
  const own = ctx.state.region(region).images.get(imageId);
  if (own && canSee(ctx, own)) return { image: own, state: ctx.state };
  for (const state of ctx.accounts?.values() ?? []) {
    if (state === ctx.state) continue;
    const image = state.region(region).images.get(imageId);
    if (image && canSee(ctx, image)) return { image, state };
  }
  return { image: visibleImage(ctx, imageId, region), state: ctx.state };
}

/** An image the caller owns (needed to change it), or `AuthFailure` for someone else's. */
export function ownedImage(ctx: Ec2Context, imageId: string): TwinImage {
  const image = visibleImage(ctx, imageId);
  if (image.ownerId !== ctx.accountId) throw new TwinServiceError('AuthFailure', `Not authorized for image:${imageId}`);
  return image;
}

/** Images AWS Backup manages can only be changed through AWS Backup. */
export function rejectBackupManaged(image: TwinImage, action: string): void {
  if (image.imageOwnerAlias === 'aws-backup-vault') {
    throw new TwinServiceError(
      'OperationNotPermitted',
      `The image ${image.imageId} is managed by AWS Backup and cannot be modified by ${action}. Use AWS Backup to delete the recovery point.`,
    );
  }
}

const NAME = /^[A-Za-z0-9()[\] ./\-'@_]{3,128}$/;

export function checkImageName(name: string): string {
  if (!NAME.test(name)) {
    throw new TwinServiceError(
      'InvalidAMIName.Malformed',
      `AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/', '_', '[', ']', ' ', '@' and "'": ${name}`,
    );
  }
  return name;
}

/** An AMI name is unique among the account's images in a region. */
export function checkNameFree(ctx: Ec2Context, name: string): void {
  for (const image of ctx.state.region(ctx.region).images.values()) {
    if (image.ownerId === ctx.accountId && image.name === name) {
      throw new TwinServiceError(
        'InvalidAMIName.Duplicate',
        `AMI name ${name} is already in use by AMI ${image.imageId}`,
      );
    }
  }
}

export function checkDescription(description: string | undefined): string | undefined {
  if (description !== undefined && description.length > 255) {
    throw new TwinServiceError('InvalidParameterValue', 'The description must be at most 255 characters long.');
  }
  return description;
}

/** Tag keys and values as EC2 accepts them on create (`aws:` is reserved, at most 50 tags per resource). */
export function checkTags(tags: Map<string, string>, existing: Map<string, string> = new Map()): void {
  for (const [key, value] of tags) {
    if (key.toLowerCase().startsWith('aws:'))
      throw new TwinServiceError(
        'InvalidParameterValue',
        `Tag keys starting with 'aws:' are reserved for internal use: ${key}`,
      );
    if (key.length === 0 || key.length > 128)
      throw new TwinServiceError('InvalidParameterValue', `Tag key must be 1 to 128 characters: '${key}'`);
    if (value.length > 256)
      throw new TwinServiceError('InvalidParameterValue', `Tag value for '${key}' must be at most 256 characters`);
  }
  const merged = new Set([...existing.keys(), ...tags.keys()]);
  if (merged.size > 50)
    throw new TwinServiceError('TagLimitExceeded', 'The maximum number of tags per resource (50) would be exceeded');
}
