import {
  CreateTagsCommand,
  DeleteTagsCommand,
  DescribeImageAttributeCommand,
  EnableImageDeprecationCommand,
  EnableImageDeregistrationProtectionCommand,
  ModifyImageAttributeCommand,
  ModifySnapshotAttributeCommand,
  type EC2Client,
  type LaunchPermission as SdkLaunchPermission,
} from '@aws-sdk/client-ec2';
import type { LaunchPermission } from '../domain/image.ts';

/** What the attribute adapter calls, for serverless.yml's least-privilege statements. */
export const REQUIRED_PERMISSIONS = [
  'ec2:CreateTags',
  'ec2:DeleteTags',
  'ec2:DescribeImageAttribute',
  'ec2:ModifyImageAttribute',
  'ec2:ModifySnapshotAttribute',
  'ec2:EnableImageDeprecation',
  'ec2:EnableImageDeregistrationProtection',
] as const;

/** CreateTags takes up to 1000 resource ids per call. */
const TAG_BATCH = 1000;

/** Tags an image and its snapshots (one call per 1000 resources). */
export async function tagResources(ec2: EC2Client, resourceIds: string[], tags: Record<string, string>): Promise<void> {
  const Tags = Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
  if (Tags.length === 0) return;
  for (let i = 0; i < resourceIds.length; i += TAG_BATCH) {
    await ec2.send(new CreateTagsCommand({ Resources: resourceIds.slice(i, i + TAG_BATCH), Tags }));
  }
}

export async function getLaunchPermissions(ec2: EC2Client, imageId: string): Promise<LaunchPermission[]> {
  const out = await ec2.send(new DescribeImageAttributeCommand({ ImageId: imageId, Attribute: 'launchPermission' }));
  return (out.LaunchPermissions ?? []).flatMap((p): LaunchPermission[] => {
    if (p.UserId) return [{ userId: p.UserId }];
    if (p.OrganizationArn) return [{ organizationArn: p.OrganizationArn }];
    if (p.OrganizationalUnitArn) return [{ organizationalUnitArn: p.OrganizationalUnitArn }];
    if (p.Group === 'all') return [{ group: 'all' }];
    return [];
  });
}

function toSdk(p: LaunchPermission): SdkLaunchPermission {
  if (p.userId) return { UserId: p.userId };
  if (p.organizationArn) return { OrganizationArn: p.organizationArn };
  if (p.organizationalUnitArn) return { OrganizationalUnitArn: p.organizationalUnitArn };
  return { Group: 'all' };
}

/** Adds launch permissions (accounts, organizations, OUs) to an image; adding one it already has is harmless. */
export async function addLaunchPermissions(
  ec2: EC2Client,
  imageId: string,
  permissions: LaunchPermission[],
): Promise<void> {
  if (permissions.length === 0) return;
  await ec2.send(
    new ModifyImageAttributeCommand({ ImageId: imageId, LaunchPermission: { Add: permissions.map(toSdk) } }),
  );
}

/** Lets these accounts create volumes from the snapshots (createVolumePermission takes accounts, not organizations). */
export async function shareSnapshots(ec2: EC2Client, snapshotIds: string[], userIds: string[]): Promise<void> {
  if (userIds.length === 0) return;
  for (const snapshotId of snapshotIds) {
    await ec2.send(
      new ModifySnapshotAttributeCommand({
        SnapshotId: snapshotId,
        Attribute: 'createVolumePermission',
        OperationType: 'add',
        CreateVolumePermission: { Add: userIds.map((UserId) => ({ UserId })) },
      }),
    );
  }
}

/** Removes these tag keys (whatever their values) from the resources. */
export async function untagResources(ec2: EC2Client, resourceIds: string[], keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  for (let i = 0; i < resourceIds.length; i += TAG_BATCH) {
    await ec2.send(
      new DeleteTagsCommand({ Resources: resourceIds.slice(i, i + TAG_BATCH), Tags: keys.map((Key) => ({ Key })) }),
    );
  }
}

export async function setDeprecation(ec2: EC2Client, imageId: string, deprecateAt: string): Promise<void> {
  await ec2.send(new EnableImageDeprecationCommand({ ImageId: imageId, DeprecateAt: new Date(deprecateAt) }));
}

export async function protectFromDeregistration(ec2: EC2Client, imageId: string): Promise<void> {
  await ec2.send(new EnableImageDeregistrationProtectionCommand({ ImageId: imageId, WithCooldown: false }));
}

export async function removeLaunchPermissions(
  ec2: EC2Client,
  imageId: string,
  permissions: LaunchPermission[],
): Promise<void> {
  if (permissions.length === 0) return;
  const Remove = permissions.map((p) =>
    p.userId
      ? { UserId: p.userId }
      : p.organizationArn
        ? { OrganizationArn: p.organizationArn }
        : p.organizationalUnitArn
          ? { OrganizationalUnitArn: p.organizationalUnitArn }
          : { Group: 'all' as const },
  );
  await ec2.send(new ModifyImageAttributeCommand({ ImageId: imageId, LaunchPermission: { Remove } }));
}
