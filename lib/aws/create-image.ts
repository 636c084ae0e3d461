import { CreateImageCommand, type EC2Client } from '@aws-sdk/client-ec2';

/** What the demo calls as the account's own image pipeline would (not ami-dr itself). */
export const REQUIRED_PERMISSIONS = ['ec2:CreateImage', 'ec2:CreateTags'] as const;

/** CreateImage from an instance, tagged at creation as a build pipeline would. Returns the new (pending) image id. */
export async function createImage(
  ec2: EC2Client,
  request: { instanceId: string; name: string; description?: string; tags: Record<string, string> },
): Promise<string> {
  const Tags = Object.entries(request.tags).map(([Key, Value]) => ({ Key, Value }));
  const out = await ec2.send(
    new CreateImageCommand({
      InstanceId: request.instanceId,
      Name: request.name,
      Description: request.description,
      NoReboot: true,
      TagSpecifications: Tags.length ? [{ ResourceType: 'image', Tags }] : undefined,
    }),
  );
  if (!out.ImageId) throw new Error('CreateImage returned no ImageId');
  return out.ImageId;
}
