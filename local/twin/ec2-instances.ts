import type { Ec2Action, Ec2ActionTable, Ec2Context } from './ec2-context.ts';
import { canSee } from './ec2-image-access.ts';
import { TwinServiceError } from './http.ts';
import { keyAllows, LAUNCH_KEY_ACTIONS } from './kms-access.ts';
import { isoTime, snapshotIdsOf, type InstanceStateName, type TwinInstance } from './state.ts';

/**
 * Launching an image, for the one question ami-dr cares about: can an account an encrypted image is shared with
 * actually use it? EC2 accepts RunInstances and the instance is `pending`; when the caller's account may not use the
 * key of the image's snapshots (neither the key policy nor a grant lets it), the instance goes to `terminated` with
 * the state reason `Client.InvalidKMSKey.InvalidState`, as EC2 reports it. Instances are the caller's account's.
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
const KMS_REASON = {
  code: 'Client.InvalidKMSKey.InvalidState',
  message: 'Client.InvalidKMSKey.InvalidState: The KMS key provided is in an incorrect state',
};

const owner = (ctx: Ec2Context, i: TwinInstance) => i.ownerId ?? ctx.accountId;
const stateXml = (s: InstanceStateName) => ({ code: CODES[s], name: s });

function mayUseKeys(ctx: Ec2Context, snapshotKeys: string[]): boolean {
  const account = ctx.caller.accountId;
  if (account === ctx.accountId) return true; // the key's own account: IAM decides, elsewhere
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
      instanceType: ctx.params.get('InstanceType') ?? 'm1.small',
      launchTime: isoTime(now),
      tags: new Map(),
      ...(ctx.caller.accountId !== ctx.accountId ? { ownerId: ctx.caller.accountId } : {}),
    };
    ctx.state.region(ctx.region).instances.set(instance.instanceId, instance);
    launched.push(instance);
    ctx.lifecycle.schedule(now + LAUNCH_MS, () => {
      if (instance.state !== 'pending') return;
      instance.state = usable ? 'running' : 'terminated';
      if (!usable) instance.stateReason = KMS_REASON;
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
    })),
  };
};

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
      systemStatus: { status: i.state === 'running' ? 'ok' : 'not-applicable' },
      instanceStatus: { status: i.state === 'running' ? 'ok' : 'not-applicable' },
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
