import {
  CreateImageCommand,
  DescribeImageAttributeCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  EnableImageDeprecationCommand,
  ModifyImageAttributeCommand,
  type Image,
  type LaunchPermission,
} from '@aws-sdk/client-ec2';
import { ManualClock } from '../../../local/twin/clock.ts';
import { startLocalRuntime, type LocalRuntime, type LocalRuntimeOptions } from '../../../local/runtime/runtime.ts';
import { parsePolicy, type Policy } from '../../../lib/domain/policy.ts';
import type { Summary } from '../../../lib/domain/replication-steps.ts';
import type { TaskBinding } from '../../../local/twin/stepfunctions.ts';

export const START = Date.UTC(2026, 0, 1);
export const SOURCE = 'us-east-1';
export const DR = ['us-west-2', 'eu-west-1'] as const;

export function testPolicy(overrides: Record<string, unknown> = {}): Readonly<Policy> {
  const { replication, ...rest } = overrides as { replication?: Record<string, unknown> };
  return parsePolicy({
    regions: { sources: [SOURCE], dr: DR.map((region) => ({ region, kmsKeyId: 'alias/ami-dr' })) },
    replication: { tagDenyList: ['CostCenter*'], extraTags: { 'dr-copy': 'true' }, ...replication },
    ...rest,
  });
}

export interface Harness {
  rt: LocalRuntime;
  clock: ManualClock;
  /** A builder's client (not ami-dr's role), as a pipeline making images would have. */
  ec2(region: string): EC2Client;
  /** Key ARNs of `alias/ami-dr` per DR region. */
  keys: Record<string, string>;
}

export async function harness(
  options: Partial<LocalRuntimeOptions> & {
    policy?: Readonly<Policy>;
    keyStates?: Partial<Record<string, 'Enabled' | 'Disabled' | 'PendingDeletion'>>;
  } = {},
): Promise<Harness> {
  const clock = new ManualClock(START);
  const { keyStates, ...runtimeOptions } = options;
  const rt = await startLocalRuntime({ ...runtimeOptions, policy: options.policy ?? testPolicy(), clock });
  const keys: Record<string, string> = {};
  for (const region of DR)
    keys[region] = rt.twin.seed.key(region, {
      alias: 'ami-dr',
      state: keyStates?.[region] ?? 'Enabled',
      // The account tests share images with may use the key (key policy), so its shares are launchable.
      allowAccounts: ['123456789012'],
    }).arn;
  const clients = new Map<string, EC2Client>();
  const ec2 = (region: string) => {
    let c = clients.get(region);
    if (!c) {
      c = new EC2Client({
        region,
        endpoint: rt.twin.endpoint,
        credentials: { accessKeyId: 'BUILDER', secretAccessKey: 'x' },
        maxAttempts: 10,
      });
      clients.set(region, c);
    }
    return c;
  };
  return { rt, clock, ec2, keys };
}

/** CreateImage of a running instance's image in the source region, as a pipeline would (tags at creation). */
export async function createImage(
  h: Harness,
  name: string,
  tags: Record<string, string> = {},
  region = SOURCE,
): Promise<string> {
  const base = h.rt.twin.seed.image(region, { name: `${name}-base`, sizeGiB: 8 });
  const instanceId = h.rt.twin.seed.instance(region, { imageId: base });
  const out = await h.ec2(region).send(
    new CreateImageCommand({
      InstanceId: instanceId,
      Name: name,
      TagSpecifications: Object.keys(tags).length
        ? [
            { ResourceType: 'image', Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) },
            { ResourceType: 'snapshot', Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) },
          ]
        : undefined,
    }),
  );
  return out.ImageId as string;
}

export async function share(h: Harness, imageId: string, permissions: LaunchPermission[]): Promise<void> {
  await h
    .ec2(SOURCE)
    .send(new ModifyImageAttributeCommand({ ImageId: imageId, LaunchPermission: { Add: permissions } }));
}

export async function deprecate(h: Harness, imageId: string, at: Date): Promise<void> {
  await h.ec2(SOURCE).send(new EnableImageDeprecationCommand({ ImageId: imageId, DeprecateAt: at }));
}

export async function images(h: Harness, region: string, filters: Record<string, string[]> = {}): Promise<Image[]> {
  const out = await h.ec2(region).send(
    new DescribeImagesCommand({
      Owners: ['self'],
      IncludeDeprecated: true,
      Filters: Object.entries(filters).map(([Name, Values]) => ({ Name, Values })),
    }),
  );
  return out.Images ?? [];
}

export async function copiesOf(h: Harness, region: string, sourceImageId: string): Promise<Image[]> {
  return images(h, region, { 'tag:ami-dr:source-image-id': [sourceImageId] });
}

export async function launchPermissions(h: Harness, region: string, imageId: string): Promise<LaunchPermission[]> {
  const out = await h
    .ec2(region)
    .send(new DescribeImageAttributeCommand({ ImageId: imageId, Attribute: 'launchPermission' }));
  return out.LaunchPermissions ?? [];
}

export async function snapshots(h: Harness, region: string, snapshotIds: string[]) {
  if (snapshotIds.length === 0) return [];
  const out = await h.ec2(region).send(new DescribeSnapshotsCommand({ SnapshotIds: snapshotIds }));
  return out.Snapshots ?? [];
}

export const tagsOf = (tags: { Key?: string; Value?: string }[] | undefined): Record<string, string> =>
  Object.fromEntries((tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));

export const snapshotIdsOf = (image: Image): string[] =>
  (image.BlockDeviceMappings ?? []).flatMap((b) => (b.Ebs?.SnapshotId ? [b.Ebs.SnapshotId] : []));

export function summaries(rt: LocalRuntime): Summary[] {
  return rt
    .executions()
    .filter((e) => e.status === 'SUCCEEDED' && e.output)
    .map((e) => JSON.parse(e.output as string) as Summary);
}

/**
 * A runtime's `wrapTask` that fails `state`'s task as EC2 refuses a call the role may not make
 * (UnauthorizedOperation) while `refuse(input)` holds, and runs it otherwise.
 */
export const refusing =
  (state: string, refuse: (input: unknown) => boolean) =>
  (name: string, task: TaskBinding): TaskBinding =>
    name !== state
      ? task
      : async (input) => {
          if (refuse(input))
            throw Object.assign(new Error('You are not authorized to perform this operation.'), {
              name: 'UnauthorizedOperation',
            });
          return task(input);
        };
