import {
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DisableImageDeregistrationProtectionCommand,
  ModifyImageAttributeCommand,
} from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DR_ACCOUNT,
  OWN_REGION,
  SOURCE,
  VAULT_REGION,
  drHarness,
  drPolicy,
  replicate,
  replicatorSession,
  seedSource,
  summaryOf,
  vaultImages,
  type DrHarness,
} from './helpers.ts';

let h: DrHarness | undefined;
afterEach(async () => {
  await h?.rt.stop();
  h = undefined;
});

const sourceImage = (h: DrHarness, imageId: string) => h.rt.twin.state.region(SOURCE).images.get(imageId)!;
const sourceSnapshots = (h: DrHarness, imageId: string) =>
  sourceImage(h, imageId).blockDeviceMappings.map((m) =>
    h!.rt.twin.state.region(SOURCE).snapshots.get(m.ebs!.snapshotId!)!,
  );
const sourceGrants = (h: DrHarness) =>
  [...h.rt.twin.state.region(SOURCE).keys.values()].flatMap((k) => k.grants.map((g) => g.name ?? ''));

describe('replication into an isolated DR account', () => {
  it('copies a customer-managed-key source into the DR account, sealed and protected, then takes the share back', async () => {
    h = await drHarness();
    const imageId = seedSource(h, 'web-2.0.0', h.sourceKey);

    await replicate(h, imageId);
    await h.rt.waitForIdle();

    const summary = summaryOf(h, imageId);
    expect(summary.outcome).toBe('replicated');
    const vault = summary.regions.find((r) => r.region === VAULT_REGION)!;
    expect(vault).toMatchObject({ status: 'available', account: DR_ACCOUNT });
    expect(vault.applied).toMatchObject({ deregistrationProtection: true, sealed: true });
    expect(summary.regions.find((r) => r.region === OWN_REGION)).toMatchObject({ status: 'available' });
    expect(summary.regions.find((r) => r.region === OWN_REGION)?.account).toBeUndefined();
    // The copy is the DR account's, under its key, with provenance and no unsealed mark; none in ami-dr's account.
    const [copy, ...others] = vaultImages(h);
    expect(others).toEqual([]);
    expect(copy).toMatchObject({
      ownerId: DR_ACCOUNT,
      state: 'available',
      deregistrationProtection: 'enabled-without-cooldown',
    });
    expect(copy!.tags.get('ami-dr:source-image-id')).toBe(imageId);
    expect(copy!.tags.has('ami-dr:unsealed')).toBe(false);
    const copySnapshot = h.vault.state
      .region(VAULT_REGION)
      .snapshots.get(copy!.blockDeviceMappings[0]!.ebs!.snapshotId!);
    expect(copySnapshot?.kmsKeyId).toBe(h.vaultKey);
    expect(copySnapshot?.tags.has('ami-dr:unsealed')).toBe(false);
    expect([...h.rt.twin.state.region(VAULT_REGION).images.values()]).toEqual([]);
    // The share made for the copy is gone: launch permission, snapshot permission, key grant.
    expect(summary.shares).toEqual([{ account: DR_ACCOUNT, removed: true, grantsRevoked: 1 }]);
    expect(sourceImage(h, imageId).launchPermissions).toEqual([]);
    expect(sourceSnapshots(h, imageId).flatMap((s) => s.createVolumePermissions)).toEqual([]);
    expect(sourceGrants(h)).toEqual([]);
    // Every call, of ami-dr's roles and of the DR account's replicator session, was allowed by its policy.
    expect(h.rt.twin.iam.log.filter((d) => d.decision !== 'Allow').map((d) => d.request.action)).toEqual([]);
    expect(h.rt.twin.iam.log.map((d) => d.request.action)).toEqual(
      expect.arrayContaining(['sts:AssumeRole', 'ec2:ModifySnapshotAttribute', 'kms:RevokeGrant', 'ec2:DeleteTags']),
    );
  });

  it('keeps the share when the policy says so', async () => {
    h = await drHarness(drPolicy({ replication: { keepSourceShare: true } }));
    const imageId = seedSource(h, 'web-2.0.1', h.sourceKey);
    await replicate(h, imageId);
    await h.rt.waitForIdle();
    expect(summaryOf(h, imageId).shares).toEqual([{ account: DR_ACCOUNT, removed: false, grantsRevoked: 0 }]);
    expect(sourceImage(h, imageId).launchPermissions).toEqual([{ userId: DR_ACCOUNT }]);
    expect(sourceGrants(h)).toEqual([`ami-dr-source-${imageId}-${DR_ACCOUNT}`]);
  });

  it("refuses the production account's role what would remove or re-share a sealed copy", async () => {
    h = await drHarness();
    const imageId = seedSource(h, 'web-2.0.2', h.sourceKey);
    await replicate(h, imageId);
    await h.rt.waitForIdle();
    const [copy] = vaultImages(h);
    const snapshotId = copy!.blockDeviceMappings[0]!.ebs!.snapshotId!;
    const ec2 = await replicatorSession(h);

    const attempts = {
      deregister: ec2.send(new DeregisterImageCommand({ ImageId: copy!.imageId, DeleteAssociatedSnapshots: true })),
      deleteSnapshot: ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })),
      share: ec2.send(
        new ModifyImageAttributeCommand({
          ImageId: copy!.imageId,
          LaunchPermission: { Add: [{ UserId: '333333333333' }] },
        }),
      ),
      unprotect: ec2.send(new DisableImageDeregistrationProtectionCommand({ ImageId: copy!.imageId })),
    };
    for (const [what, attempt] of Object.entries(attempts))
      await expect(attempt, what).rejects.toMatchObject({ name: 'UnauthorizedOperation' });
    expect(vaultImages(h).map((i) => [i.imageId, i.state, i.launchPermissions])).toEqual([
      [copy!.imageId, 'available', []],
    ]);
  });
});
