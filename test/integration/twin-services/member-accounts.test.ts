import {
  CopyImageCommand,
  DescribeImagesCommand,
  EC2Client,
  ModifyImageAttributeCommand,
  ModifySnapshotAttributeCommand,
} from '@aws-sdk/client-ec2';
import { CreateGrantCommand, KMSClient } from '@aws-sdk/client-kms';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../local/twin/clock.ts';
import { startTwin, type Twin, type TwinAccount } from '../../../local/twin/twin.ts';

/**
 * Another account whose resources the twin holds (a DR account): its roles are assumed through STS only when they
 * exist and trust the caller; its sessions copy an AMI another account shared with it only when the owner has also
 * shared the snapshots (and, encrypted under a customer managed key, granted the key); the copy is the copier's.
 */

const SOURCE = 'us-east-1';
const DEST = 'us-west-2';
const OWNER = '111111111111';
const VAULT = '222222222222';
const ROLE = `arn:aws:iam::${VAULT}:role/copier`;
const owner = { accessKeyId: 'test', secretAccessKey: 'test' };

let twin: Twin | undefined;
const clock = new ManualClock(Date.UTC(2026, 0, 1));
afterEach(async () => {
  await twin?.stop();
  twin = undefined;
});

async function setUp(): Promise<{ twin: Twin; vault: TwinAccount; ec2: (region: string) => EC2Client }> {
  twin = await startTwin({
    accountId: OWNER,
    clock,
    s3: false,
    identities: { OWNERCOPIER: `arn:aws:sts::${OWNER}:assumed-role/ami-dr-copier/task` },
  });
  const vault = twin.addAccount(VAULT);
  twin.iam.defineRole({
    arn: ROLE,
    statements: [{ Effect: 'Allow', Action: ['ec2:*', 'kms:*'], Resource: '*' }],
    trust: [
      {
        Effect: 'Allow',
        Principal: { AWS: `arn:aws:iam::${OWNER}:root` },
        Action: 'sts:AssumeRole',
        Condition: { ArnLike: { 'aws:PrincipalArn': `arn:aws:iam::${OWNER}:role/ami-dr-*` } },
      },
    ],
  });
  vault.seed.key(DEST, { alias: 'vault' });
  const t = twin;
  return {
    twin: t,
    vault,
    ec2: (region) => new EC2Client({ region, endpoint: t.endpoint, credentials: owner, maxAttempts: 1 }),
  };
}

async function assume(t: Twin, accessKeyId: string, roleArn = ROLE) {
  const sts = new STSClient({
    region: SOURCE,
    endpoint: t.endpoint,
    credentials: { accessKeyId, secretAccessKey: 'x' },
    maxAttempts: 1,
  });
  const out = await sts.send(new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: 'copy' }));
  return {
    accessKeyId: out.Credentials!.AccessKeyId!,
    secretAccessKey: out.Credentials!.SecretAccessKey!,
    sessionToken: out.Credentials!.SessionToken!,
  };
}

function copyRequest(imageId: string) {
  return new CopyImageCommand({
    SourceRegion: SOURCE,
    SourceImageId: imageId,
    Name: 'copy',
    Encrypted: true,
    KmsKeyId: 'alias/vault',
  });
}

describe("a DR account's roles on the twin", () => {
  it('refuses AssumeRole of a role the account does not have, and of one that does not trust the caller', async () => {
    const { twin: t } = await setUp();
    await expect(assume(t, 'OWNERCOPIER', `arn:aws:iam::${VAULT}:role/missing`)).rejects.toMatchObject({
      name: 'AccessDenied',
    });
    await expect(assume(t, 'test')).rejects.toMatchObject({ name: 'AccessDenied' });
    await expect(assume(t, 'OWNERCOPIER')).resolves.toMatchObject({ accessKeyId: expect.stringMatching(/^ASIA/) });
  });
});

describe('CopyImage of an AMI shared by another account', () => {
  it('needs the snapshots shared too, and makes a copy the copying account owns', async () => {
    const { twin: t, vault, ec2 } = await setUp();
    const imageId = t.seed.image(SOURCE, { name: 'web', sizeGiB: 8, launchPermissions: [{ userId: VAULT }] });
    const copier = new EC2Client({ region: DEST, endpoint: t.endpoint, credentials: await assume(t, 'OWNERCOPIER') });

    await expect(copier.send(copyRequest(imageId))).rejects.toMatchObject({
      name: 'InvalidRequest',
      message: 'You do not have permission to access the storage of this ami',
    });
    const snapshotId = t.state.region(SOURCE).images.get(imageId)!.blockDeviceMappings[0]!.ebs!.snapshotId!;
    await ec2(SOURCE).send(
      new ModifySnapshotAttributeCommand({
        SnapshotId: snapshotId,
        Attribute: 'createVolumePermission',
        OperationType: 'add',
        UserIds: [VAULT],
      }),
    );
    const { ImageId } = await copier.send(copyRequest(imageId));
    clock.advance(60 * 60_000);

    const own = await copier.send(new DescribeImagesCommand({ Owners: ['self'] }));
    expect(own.Images?.map((i) => [i.ImageId, i.OwnerId, i.State])).toEqual([[ImageId, VAULT, 'available']]);
    expect(vault.state.region(DEST).images.get(ImageId!)?.ownerId).toBe(VAULT);
    // Not the owner's: its own DescribeImages in the destination shows nothing.
    expect((await ec2(DEST).send(new DescribeImagesCommand({ Owners: ['self'] }))).Images).toEqual([]);
  });

  it("fails the copy of a source encrypted under the owner's key until the owner grants the key", async () => {
    const { twin: t } = await setUp();
    const keyArn = t.seed.key(SOURCE, { alias: 'builds' }).arn;
    const imageId = t.seed.image(SOURCE, {
      name: 'web',
      volumes: [{ sizeGiB: 8, encrypted: true, kmsKeyId: keyArn }],
      launchPermissions: [{ userId: VAULT }],
    });
    const snapshotId = t.state.region(SOURCE).images.get(imageId)!.blockDeviceMappings[0]!.ebs!.snapshotId!;
    t.state.region(SOURCE).snapshots.get(snapshotId)!.createVolumePermissions.push({ userId: VAULT });
    const copier = new EC2Client({ region: DEST, endpoint: t.endpoint, credentials: await assume(t, 'OWNERCOPIER') });

    const denied = await copier.send(copyRequest(imageId));
    clock.advance(60 * 60_000);
    const failed = await copier.send(new DescribeImagesCommand({ ImageIds: [denied.ImageId!] }));
    expect(failed.Images?.[0]).toMatchObject({ State: 'failed' });
    expect(failed.Images?.[0]?.StateReason?.Message).toContain(`${keyArn} of the source snapshot`);

    await new KMSClient({ region: SOURCE, endpoint: t.endpoint, credentials: owner }).send(
      new CreateGrantCommand({
        KeyId: keyArn,
        GranteePrincipal: ROLE,
        Operations: ['Decrypt', 'DescribeKey', 'CreateGrant'],
      }),
    );
    const granted = await copier.send(new CopyImageCommand({ ...copyRequest(imageId).input, Name: 'copy-2' }));
    clock.advance(60 * 60_000);
    const ok = await copier.send(new DescribeImagesCommand({ ImageIds: [granted.ImageId!] }));
    expect(ok.Images?.[0]?.State).toBe('available');
  });

  it('refuses to share the snapshots of an aws/ebs-encrypted image with another account', async () => {
    const { twin: t, ec2 } = await setUp();
    const imageId = t.seed.image(SOURCE, {
      name: 'legacy',
      volumes: [{ sizeGiB: 8, encrypted: true, kmsKeyId: 'alias/aws/ebs' }],
    });
    await ec2(SOURCE).send(
      new ModifyImageAttributeCommand({ ImageId: imageId, LaunchPermission: { Add: [{ UserId: VAULT }] } }),
    );
    const snapshotId = t.state.region(SOURCE).images.get(imageId)!.blockDeviceMappings[0]!.ebs!.snapshotId!;
    await expect(
      ec2(SOURCE).send(
        new ModifySnapshotAttributeCommand({
          SnapshotId: snapshotId,
          Attribute: 'createVolumePermission',
          OperationType: 'add',
          UserIds: [VAULT],
        }),
      ),
    ).rejects.toMatchObject({ name: 'InvalidParameterValue' });
  });
});
