import {
  DescribeInstancesCommand,
  DescribeInstanceStatusCommand,
  EC2Client,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import {
  CreateGrantCommand,
  DescribeKeyCommand,
  GetKeyPolicyCommand,
  KMSClient,
  ListGrantsCommand,
  PutKeyPolicyCommand,
  RetireGrantCommand,
  RevokeGrantCommand,
} from '@aws-sdk/client-kms';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../local/twin/clock.ts';
import { startTwin, type Twin } from '../../../local/twin/twin.ts';

/**
 * Accounts on the twin: a partner account (111122223333) an encrypted image is shared with can launch it only once
 * the owner lets it use the key, by grant or by key policy; otherwise the instance ends `terminated` with
 * Client.InvalidKMSKey.InvalidState, as EC2 reports it.
 */

const REGION = 'us-west-2';
const PARTNER = '111122223333';

describe('accounts on the twin', () => {
  let twin: Twin;
  let keyArn: string;
  let imageId: string;
  let partner: { accessKeyId: string; secretAccessKey: string; sessionToken: string };
  const owner = { accessKeyId: 'test', secretAccessKey: 'test' };
  const config = (credentials: typeof owner) => ({ region: REGION, credentials, maxAttempts: 1 });

  beforeAll(async () => {
    twin = await startTwin({
      clock: new ManualClock(Date.UTC(2026, 0, 1)),
      s3: false,
      identities: { PARTNERADMIN: `arn:aws:iam::${PARTNER}:user/admin` },
    });
    keyArn = twin.seed.key(REGION, { alias: 'ami-dr' }).arn;
    imageId = twin.seed.image(REGION, {
      name: 'shared-encrypted',
      encrypted: true,
      kmsKeyId: keyArn,
      launchPermissions: [{ userId: PARTNER }],
    });
    const sts = new STSClient({
      ...config({ accessKeyId: 'PARTNERADMIN', secretAccessKey: 'x' }),
      endpoint: twin.endpoint,
    });
    const assumed = await sts.send(
      new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${PARTNER}:role/launcher`, RoleSessionName: 'launch' }),
    );
    partner = {
      accessKeyId: assumed.Credentials!.AccessKeyId!,
      secretAccessKey: assumed.Credentials!.SecretAccessKey!,
      sessionToken: assumed.Credentials!.SessionToken!,
    };
  });

  afterAll(async () => {
    await twin?.stop();
  });

  const ec2 = (credentials: typeof owner) => new EC2Client({ ...config(credentials), endpoint: twin.endpoint });
  const kms = (credentials: typeof owner) => new KMSClient({ ...config(credentials), endpoint: twin.endpoint });

  /** Launches the shared image as the partner and reports the instance's state once EC2 has settled it. */
  async function launchAsPartner(): Promise<{ state?: string; reason?: string; instanceId: string }> {
    const run = await ec2(partner).send(
      new RunInstancesCommand({ ImageId: imageId, MinCount: 1, MaxCount: 1, InstanceType: 't3.micro' }),
    );
    const instanceId = run.Instances![0]!.InstanceId!;
    expect(run.Instances![0]!.State?.Name).toBe('pending');
    (twin.clock as ManualClock).advance(10_000);
    await twin.settle();
    const status = await ec2(partner).send(
      new DescribeInstanceStatusCommand({ InstanceIds: [instanceId], IncludeAllInstances: true }),
    );
    const described = await ec2(partner).send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    return {
      instanceId,
      state: status.InstanceStatuses?.[0]?.InstanceState?.Name,
      reason: described.Reservations?.[0]?.Instances?.[0]?.StateReason?.Code,
    };
  }

  it('AssumeRole hands out credentials the twin maps to the role in its own account', async () => {
    const identity = await new STSClient({ ...config(partner), endpoint: twin.endpoint }).send(
      new GetCallerIdentityCommand({}),
    );
    expect(identity).toMatchObject({ Account: PARTNER, Arn: `arn:aws:sts::${PARTNER}:assumed-role/launcher/launch` });
  });

  it('without the key, the partner cannot use it and its instance of the shared image terminates', async () => {
    await expect(kms(partner).send(new DescribeKeyCommand({ KeyId: keyArn }))).rejects.toMatchObject({
      name: 'AccessDeniedException',
    });
    const launched = await launchAsPartner();
    expect(launched).toMatchObject({ state: 'terminated', reason: 'Client.InvalidKMSKey.InvalidState' });
    // The owner's account does not see the partner's instance.
    const mine = await ec2(owner).send(new DescribeInstancesCommand({}));
    expect(mine.Reservations?.flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId)).not.toContain(
      launched.instanceId,
    );
  });

  it('a grant to the partner account lets it launch; revoked, it no longer can', async () => {
    const grant = await kms(owner).send(
      new CreateGrantCommand({
        KeyId: keyArn,
        GranteePrincipal: `arn:aws:iam::${PARTNER}:root`,
        Operations: ['Decrypt', 'DescribeKey', 'CreateGrant', 'ReEncryptFrom', 'GenerateDataKeyWithoutPlaintext'],
      }),
    );
    const grants = await kms(owner).send(new ListGrantsCommand({ KeyId: keyArn }));
    expect(grants.Grants?.map((g) => g.GranteePrincipal)).toEqual([`arn:aws:iam::${PARTNER}:root`]);
    await expect(kms(partner).send(new DescribeKeyCommand({ KeyId: keyArn }))).resolves.toBeDefined();
    const launched = await launchAsPartner();
    expect(launched.state).toBe('running');
    const terminated = await ec2(partner).send(new TerminateInstancesCommand({ InstanceIds: [launched.instanceId] }));
    expect(terminated.TerminatingInstances?.[0]?.CurrentState?.Name).toBe('terminated');

    await kms(owner).send(new RevokeGrantCommand({ KeyId: keyArn, GrantId: grant.GrantId }));
    expect((await launchAsPartner()).state).toBe('terminated');
    const again = await kms(owner).send(
      new CreateGrantCommand({ KeyId: keyArn, GranteePrincipal: PARTNER, Operations: ['Decrypt'] }),
    );
    await kms(owner).send(new RetireGrantCommand({ GrantToken: again.GrantToken }));
    expect((await kms(owner).send(new ListGrantsCommand({ KeyId: keyArn }))).Grants).toEqual([]);
  });

  it('a key policy naming the partner account lets it launch', async () => {
    const current = await kms(owner).send(new GetKeyPolicyCommand({ KeyId: keyArn, PolicyName: 'default' }));
    const policy = JSON.parse(current.Policy!) as { Statement: Record<string, unknown>[] };
    expect(policy.Statement[0]).toMatchObject({ Principal: { AWS: `arn:aws:iam::${twin.accountId}:root` } });
    policy.Statement.push({
      Sid: 'Partner launches',
      Effect: 'Allow',
      Principal: { AWS: `arn:aws:iam::${PARTNER}:root` },
      Action: ['kms:Decrypt', 'kms:DescribeKey', 'kms:CreateGrant', 'kms:ReEncrypt*', 'kms:GenerateDataKey*'],
      Resource: '*',
    });
    await kms(owner).send(
      new PutKeyPolicyCommand({ KeyId: keyArn, PolicyName: 'default', Policy: JSON.stringify(policy) }),
    );
    expect((await launchAsPartner()).state).toBe('running');
  });

  it('an image not shared with the partner does not exist for it', async () => {
    const hidden = twin.seed.image(REGION, { name: 'private', encrypted: true, kmsKeyId: keyArn });
    await expect(
      ec2(partner).send(new RunInstancesCommand({ ImageId: hidden, MinCount: 1, MaxCount: 1 })),
    ).rejects.toMatchObject({ name: 'InvalidAMIID.NotFound' });
  });
});
