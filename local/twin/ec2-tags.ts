import type { Ec2Action, Ec2Context } from './ec2-context.ts';
import { checkId } from './ec2-errors.ts';
import { canSee, checkTags } from './ec2-image-access.ts';
import { TwinServiceError } from './http.ts';

/**
 * CreateTags / DeleteTags on the resources the twin holds (images, snapshots, instances, launch templates). The
 * call is all or nothing: one unknown id fails it before anything changes, with that resource's NotFound code.
 */
function tagsOf(ctx: Ec2Context, resourceId: string): Map<string, string> {
  const region = ctx.state.region(ctx.region);
  const prefix = resourceId.slice(0, resourceId.indexOf('-'));
  switch (prefix) {
    case 'ami': {
      checkId('ami', resourceId);
      const image = region.images.get(resourceId);
      if (!image || !canSee(ctx, image))
        throw new TwinServiceError('InvalidAMIID.NotFound', `The image id '[${resourceId}]' does not exist`);
      return image.tags;
    }
    case 'snap': {
      checkId('snap', resourceId);
      const snapshot = region.snapshots.get(resourceId);
      if (!snapshot || snapshot.ownerId !== ctx.accountId)
        throw new TwinServiceError('InvalidSnapshot.NotFound', `The snapshot '${resourceId}' does not exist.`);
      return snapshot.tags;
    }
    case 'i': {
      checkId('i', resourceId);
      const instance = region.instances.get(resourceId);
      if (!instance)
        throw new TwinServiceError('InvalidInstanceID.NotFound', `The instance ID '${resourceId}' does not exist`);
      return instance.tags;
    }
    case 'lt': {
      const template = region.launchTemplates.get(resourceId);
      if (!template)
        throw new TwinServiceError(
          'InvalidLaunchTemplateId.NotFound',
          `The specified launch template, with template ID ${resourceId}, does not exist.`,
        );
      return template.tags;
    }
    default:
      throw new TwinServiceError('InvalidID', `The ID '${resourceId}' is not valid`);
  }
}

export const createTags: Ec2Action = (ctx) => {
  const resources = ctx.params.list('ResourceId');
  if (resources.length === 0)
    throw new TwinServiceError('MissingParameter', 'The request must contain the parameter resourceIdSet');
  const tags = new Map<string, string>();
  for (const tag of ctx.params.structs('Tag')) tags.set(tag.required('Key'), tag.get('Value') ?? '');
  if (tags.size === 0) throw new TwinServiceError('MissingParameter', 'The request must contain the parameter tagSet');
  const targets = resources.map((id) => tagsOf(ctx, id));
  for (const target of targets) checkTags(tags, target);
  for (const target of targets) for (const [key, value] of tags) target.set(key, value);
  return { return: true };
};

export const deleteTags: Ec2Action = (ctx) => {
  const resources = ctx.params.list('ResourceId');
  if (resources.length === 0)
    throw new TwinServiceError('MissingParameter', 'The request must contain the parameter resourceIdSet');
  const targets = resources.map((id) => tagsOf(ctx, id));
  const asked = ctx.params.structs('Tag').map((tag) => ({ key: tag.required('Key'), value: tag.get('Value') }));
  for (const target of targets) {
    if (asked.length === 0) {
      // No tags named: every user tag goes (aws: tags are not the caller's to delete).
      for (const key of [...target.keys()]) if (!key.startsWith('aws:')) target.delete(key);
      continue;
    }
    for (const { key, value } of asked) {
      if (key.startsWith('aws:'))
        throw new TwinServiceError(
          'InvalidParameterValue',
          `Tag keys starting with 'aws:' are reserved for internal use: ${key}`,
        );
      // A value given means "only if it has this value"; an empty value is a value.
      if (value === undefined || target.get(key) === value) target.delete(key);
    }
  }
  return { return: true };
};
