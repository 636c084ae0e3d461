import {
  DescribeInstanceStatusCommand,
  paginateDescribeInstances,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type _InstanceType,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import type { DrillInstance } from '../domain/drill.ts';

/** What the drill adapters call; serverless.yml's drill role grants these (RunInstances tags at creation). */
export const REQUIRED_PERMISSIONS = [
  'ec2:RunInstances',
  'ec2:CreateTags',
  'ec2:DescribeInstances',
  'ec2:DescribeInstanceStatus',
  'ec2:TerminateInstances',
] as const;

export interface LaunchRequest {
  imageId: string;
  instanceType: string;
  subnetId?: string;
  securityGroupIds?: string[];
  /** On the instance and its volumes from creation (TagSpecifications). */
  tags: Record<string, string>;
  /** Idempotency: a retried call returns the same instance. */
  clientToken: string;
}

/**
 * One instance, private only (no public IP), that terminates itself if its OS shuts down, tagged from creation, with
 * IMDSv2 required.
 */
export async function launchInstance(
  ec2: EC2Client,
  request: LaunchRequest,
): Promise<{ instanceId: string; launchTime?: string }> {
  const Tags = Object.entries(request.tags).map(([Key, Value]) => ({ Key, Value }));
  const out = await ec2.send(
    new RunInstancesCommand({
      ImageId: request.imageId,
      // The policy may name types newer than this SDK's list; EC2 validates the name.
      InstanceType: request.instanceType as _InstanceType,
      MinCount: 1,
      MaxCount: 1,
      ClientToken: request.clientToken,
      InstanceInitiatedShutdownBehavior: 'terminate',
      NetworkInterfaces: [
        {
          DeviceIndex: 0,
          AssociatePublicIpAddress: false,
          DeleteOnTermination: true,
          ...(request.subnetId ? { SubnetId: request.subnetId } : {}),
          ...(request.securityGroupIds?.length ? { Groups: request.securityGroupIds } : {}),
        },
      ],
      MetadataOptions: { HttpTokens: 'required' },
      TagSpecifications: [
        { ResourceType: 'instance', Tags },
        { ResourceType: 'volume', Tags },
      ],
    }),
  );
  const instance = out.Instances?.[0];
  if (!instance?.InstanceId) throw new Error('RunInstances returned no instance');
  return { instanceId: instance.InstanceId, launchTime: instance.LaunchTime?.toISOString() };
}

export interface InstanceHealth {
  state: string;
  /** `ok`, `impaired`, `initializing`, `insufficient-data`, `not-applicable`. */
  systemStatus?: string;
  instanceStatus?: string;
  /** Why it stopped or terminated (DescribeInstances' StateReason), when it did. */
  stateReason?: { code?: string; message?: string };
}

/** The instance's state and status checks (DescribeInstanceStatus; its state reason from DescribeInstances when it ended). */
export async function instanceHealth(ec2: EC2Client, instanceId: string): Promise<InstanceHealth> {
  const out = await ec2.send(
    new DescribeInstanceStatusCommand({ InstanceIds: [instanceId], IncludeAllInstances: true }),
  );
  const status = out.InstanceStatuses?.[0];
  const health: InstanceHealth = {
    state: status?.InstanceState?.Name ?? 'unknown',
    systemStatus: status?.SystemStatus?.Status,
    instanceStatus: status?.InstanceStatus?.Status,
  };
  if (health.state === 'terminated' || health.state === 'shutting-down' || health.state === 'stopped') {
    const [described] = await listInstances(ec2, { 'instance-id': [instanceId] });
    if (described?.stateReason) health.stateReason = described.stateReason;
  }
  return health;
}

/** Instances carrying a tag key, not yet terminated (every page). */
export async function listTaggedInstances(ec2: EC2Client, tagKey: string): Promise<DrillInstance[]> {
  return listInstances(ec2, {
    'tag-key': [tagKey],
    'instance-state-name': ['pending', 'running', 'stopping', 'stopped'],
  });
}

async function listInstances(
  ec2: EC2Client,
  filters: Record<string, string[]>,
): Promise<(DrillInstance & { stateReason?: { code?: string; message?: string } })[]> {
  const found: (DrillInstance & { stateReason?: { code?: string; message?: string } })[] = [];
  const pages = paginateDescribeInstances(
    { client: ec2, pageSize: 1000 },
    { Filters: Object.entries(filters).map(([Name, Values]) => ({ Name, Values })) },
  );
  for await (const page of pages)
    for (const reservation of page.Reservations ?? [])
      for (const i of reservation.Instances ?? [])
        if (i.InstanceId)
          found.push({
            instanceId: i.InstanceId,
            launchTime: i.LaunchTime?.toISOString(),
            state: i.State?.Name,
            ...(i.StateReason ? { stateReason: { code: i.StateReason.Code, message: i.StateReason.Message } } : {}),
          });
  return found;
}

/** TerminateInstances (an instance already gone is not an error: it is what the caller wants). */
export async function terminateInstances(ec2: EC2Client, instanceIds: string[]): Promise<void> {
  if (instanceIds.length === 0) return;
  await ec2.send(new TerminateInstancesCommand({ InstanceIds: instanceIds }));
}
