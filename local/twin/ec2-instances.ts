import type { Ec2Action, Ec2ActionTable, Ec2Context } from './ec2-context.ts';
import { canSee } from './ec2-image-access.ts';
import { TwinServiceError } from './http.ts';
import { keyAllows, LAUNCH_KEY_ACTIONS } from './kms-access.ts';
import { isoTime, snapshotIdsOf, type InstanceStateName, type TwinInstance } from './state.ts';

/**
 * Launching an image, for the questions ami-dr's restore drills ask: can this copy be launched, and does it boot?
 * EC2 accepts RunInstances and the instance is `pending`; when the caller's account may not use the key of the
 * image's snapshots (neither the key policy nor a grant lets it), the instance goes to `terminated` with the state
 * reason `Client.InvalidKMSKey.InvalidState`, as EC2 reports it; else `running`, its status checks `initializing`
 * for a while, then `ok` (or the instance check `impaired` when a boot failure is injected). An instance type of
 * another architecture than the image's is refused (InvalidParameterValue), as is a launch where capacity is
 * injected away (InsufficientInstanceCapacity). Tags given at launch (TagSpecifications) are on the instance from
 * the start. Instances are the caller's account's.
 */

const CODES: Record<InstanceStateName, number> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};
const LAUNCH_MS = 5_000;
/** How long status checks report `initializing` after the instance is running (AWS: a few minutes). */
export const STATUS_INITIALIZING_MS = 2 * 60_000;
/** Graviton families (`t4g`, `m7g`, `c7gn`, `a1`): arm64; every other type runs x86_64 (and i386) images. */
const ARM_FAMILY = /^(a1|[a-z]+\d+g[a-z]*)$/;

function typeArchitecture(instanceType: string): string {
  return ARM_FAMILY.test(instanceType.split('.')[0] ?? '') ? 'arm64' : 'x86_64';
}
const KMS_REASON = {
  code: 'Client.InvalidKMSKey.InvalidState',
  message: 'Client.InvalidKMSKey.InvalidState: The KMS key provided is in an incorrect state',
};

const owner = (ctx: Ec2Context, i: TwinInstance) => i.ownerId ?? ctx.accountId;
const stateXml = (s: InstanceStateName) => ({ code: CODES[s], name: s });

/**
 * Whether EBS can use the snapshots' keys for the caller: every key must exist and be `Enabled` (a disabled or
 * pending-deletion key fails the launch, whoever launches), and its key policy or a grant must let the caller. In the
 * key's own account the key policy usually delegates to IAM (its account root), which the twin evaluates per role
 * with the request (iam-requests.ts); a key policy that names neither the root nor the caller refuses it.
 */
function mayUseKeys(ctx: Ec2Context, snapshotKeys: string[]): boolean {
  const account = ctx.caller.accountId;
  const principal = { accountId: account, arns: [ctx.caller.arn, ...(ctx.caller.roleArn ? [ctx.caller.roleArn] : [])] };
  return snapshotKeys.every((ref) => {
    const resolved = ctx.state.resolve(ctx.region, ref);
    const key = resolved && ctx.state.region(ctx.region).keys.get(resolved.keyId);
    if (!key || key.state !== 'Enabled') return false;
    return LAUNCH_KEY_ACTIONS.every((action) =>
      keyAllows(key, ctx.accountId, principal, action, {
        'kms:ViaService': `ec2.${ctx.region}.amazonaws.com`,
        'kms:GrantIsForAWSResource': 'true',
      }),
    );
  });
}

const runInstances: Ec2Action = (ctx) => {
  const imageId = ctx.params.required('ImageId');
  const image = ctx.state.region(ctx.region).images.get(imageId);
  if (!image || !canSee({ accountId: ctx.caller.accountId }, image) || image.state !== 'available')
    throw new TwinServiceError('InvalidAMIID.NotFound', `The image id '[${imageId}]' does not exist`);
  const count = ctx.params.int('MinCount') ?? 1;
  const instanceType = ctx.params.get('InstanceType') ?? 'm1.small';
  const typeArch = typeArchitecture(instanceType);
  const imageArch = image.architecture === 'i386' ? 'x86_64' : image.architecture;
  if (typeArch !== imageArch)
    throw new TwinServiceError(
      'InvalidParameterValue',
      `The architecture '${typeArch}' of the specified instance type does not match the architecture '${image.architecture}' of the specified AMI. Specify an instance type and an AMI that have matching architectures, and try again.`,
    );
  if (ctx.settings.noCapacity.has(ctx.region))
    throw new TwinServiceError(
      'InsufficientInstanceCapacity',
      `We currently do not have sufficient ${instanceType} capacity in the Availability Zone you requested (${ctx.region}a). Our system will be working on provisioning additional capacity.`,
      500,
    );
  const tags = ctx.params.tagSpecifications(['instance', 'volume', 'network-interface']).get('instance');
  const shutdown = ctx.params.get('InstanceInitiatedShutdownBehavior');
  const bootFailure = ctx.settings.failBoots.get(ctx.region);
  const snapshots = ctx.state.region(ctx.region).snapshots;
  const keys = snapshotIdsOf(image).flatMap((id) => {
    const key = snapshots.get(id)?.kmsKeyId;
    return key ? [key] : [];
  });
  const usable = mayUseKeys(ctx, keys);
  const now = ctx.clock.now();
  const launched: TwinInstance[] = [];
  for (let n = 0; n < count; n++) {
    const instance: TwinInstance = {
      instanceId: ctx.state.newId('i'),
      region: ctx.region,
      imageId,
      state: 'pending',
      instanceType,
      launchTime: isoTime(now),
      tags: new Map(tags ?? []),
      ...(shutdown === 'terminate' || shutdown === 'stop' ? { shutdownBehavior: shutdown } : {}),
      ...(bootFailure ? { bootFailure } : {}),
      ...(ctx.caller.accountId !== ctx.accountId ? { ownerId: ctx.caller.accountId } : {}),
    };
    ctx.state.region(ctx.region).instances.set(instance.instanceId, instance);
    launched.push(instance);
    ctx.lifecycle.schedule(now + LAUNCH_MS, () => {
      if (instance.state !== 'pending') return;
      instance.state = usable ? 'running' : 'terminated';
      if (usable) instance.runningSince = now + LAUNCH_MS;
      else instance.stateReason = KMS_REASON;
    });
  }
  return {
    reservationId: `r-${launched[0]!.instanceId.slice(2)}`,
    ownerId: ctx.caller.accountId,
    groupSet: [],
    instancesSet: launched.map((i) => ({
      instanceId: i.instanceId,
      imageId: i.imageId,
      instanceState: stateXml(i.state),
      instanceType: i.instanceType,
      launchTime: i.launchTime,
      placement: { availabilityZone: `${i.region}a`, tenancy: 'default' },
      ...(i.tags.size ? { tagSet: [...i.tags].map(([key, value]) => ({ key, value })) } : {}),
    })),
  };
};

/** `initializing` for a while after the instance runs, then `ok` (the instance check `impaired` on a boot failure). */
function checks(ctx: Ec2Context, i: TwinInstance): { system: string; instance: string } {
  if (i.state !== 'running') return { system: 'not-applicable', instance: 'not-applicable' };
  if (ctx.clock.now() - (i.runningSince ?? 0) < STATUS_INITIALIZING_MS)
    return { system: 'initializing', instance: 'initializing' };
  return { system: 'ok', instance: i.bootFailure ? 'impaired' : 'ok' };
}

const detail = (status: string) => ({
  name: 'reachability',
  status: status === 'ok' ? 'passed' : status === 'impaired' ? 'failed' : status,
});

const callersInstances = (ctx: Ec2Context): TwinInstance[] => {
  const ids = ctx.params.list('InstanceId');
  const all = [...ctx.state.region(ctx.region).instances.values()].filter(
    (i) => owner(ctx, i) === ctx.caller.accountId,
  );
  for (const id of ids)
    if (!all.some((i) => i.instanceId === id))
      throw new TwinServiceError('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
  return ids.length ? all.filter((i) => ids.includes(i.instanceId)) : all;
};

const describeInstanceStatus: Ec2Action = (ctx) => {
  const includeAll = ctx.params.bool('IncludeAllInstances') ?? false;
  const instances = callersInstances(ctx).filter((i) => includeAll || i.state === 'running');
  return {
    instanceStatusSet: instances.map((i) => ({
      instanceId: i.instanceId,
      availabilityZone: `${i.region}a`,
      instanceState: stateXml(i.state),
      systemStatus: { status: checks(ctx, i).system, details: [detail(checks(ctx, i).system)] },
      instanceStatus: { status: checks(ctx, i).instance, details: [detail(checks(ctx, i).instance)] },
    })),
  };
};

const terminateInstances: Ec2Action = (ctx) => {
  const instances = callersInstances(ctx);
  return {
    instancesSet: instances.map((i) => {
      const previous = i.state;
      i.state = 'terminated';
      return { instanceId: i.instanceId, previousState: stateXml(previous), currentState: stateXml(i.state) };
    }),
  };
};

export const INSTANCE_ACTIONS: Ec2ActionTable = {
  RunInstances: runInstances,
  DescribeInstanceStatus: describeInstanceStatus,
  TerminateInstances: terminateInstances,
};
