import { afterEach, describe, expect, it } from 'vitest';
import { parsePolicy } from '../../../lib/domain/policy.ts';
import type { Summary } from '../../../lib/domain/replication-steps.ts';
import { startOrJoinReplication } from '../../../lib/workflows/replication.ts';
import { runReadiness } from '../../../lib/workflows/readiness.ts';
import { runRetention } from '../../../lib/workflows/retention.ts';
import {
  DR_ACCOUNT,
  OWN_REGION,
  SOURCE,
  START,
  VAULT_REGION,
  drHarness,
  drPolicy,
  replicate,
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

const DAY = 86_400_000;

/** Nothing of the source's share with the DR account is left: launch permission, snapshot permissions, grants. */
function expectUnshared(h: DrHarness, imageId: string): void {
  const region = h.rt.twin.state.region(SOURCE);
  const image = region.images.get(imageId)!;
  expect(image.launchPermissions).toEqual([]);
  for (const m of image.blockDeviceMappings)
    expect(region.snapshots.get(m.ebs!.snapshotId!)!.createVolumePermissions).toEqual([]);
  expect([...region.keys.values()].flatMap((k) => k.grants)).toEqual([]);
}

/** No image or snapshot of the DR account in the vault region (nothing left behind). */
function expectVaultEmpty(h: DrHarness): void {
  expect(vaultImages(h)).toEqual([]);
  expect([...h.vault.state.region(VAULT_REGION).snapshots.values()]).toEqual([]);
}

describe('a DR account target fails as an own-account target does: reported, cleaned up, the rest going on', () => {
  it('refuses an aws/ebs-encrypted source with the reason, sharing nothing and leaving nothing', async () => {
    h = await drHarness();
    const imageId = seedSource(h, 'legacy-1.0', 'alias/aws/ebs');

    await replicate(h, imageId);
    await h.rt.waitForIdle();

    const summary = summaryOf(h, imageId);
    expect(summary.outcome).toBe('partial');
    const vault = summary.regions.find((r) => r.region === VAULT_REGION)!;
    expect(vault).toMatchObject({ status: 'failed', account: DR_ACCOUNT, error: 'UnshareableSourceError' });
    expect(vault.reason).toMatch(/AWS managed key aws\/ebs .* cannot be shared with another account/);
    expect(summary.regions.find((r) => r.region === OWN_REGION)).toMatchObject({ status: 'available' });
    expectVaultEmpty(h);
    expectUnshared(h, imageId);
  });

  it('reports a DR account whose role is missing, with nothing shared left behind', async () => {
    h = await drHarness(drPolicy({ vault: { role: 'ami-dr-not-deployed' } }));
    const imageId = seedSource(h, 'web-3.0.0', h.sourceKey);

    await replicate(h, imageId);
    await h.rt.waitForIdle();

    const vault = summaryOf(h, imageId).regions.find((r) => r.region === VAULT_REGION)!;
    expect(vault).toMatchObject({ status: 'failed', account: DR_ACCOUNT, error: 'DrAccountAccessError' });
    expect(vault.reason).toContain(`cannot assume arn:aws:iam::${DR_ACCOUNT}:role/ami-dr-not-deployed`);
    expect(vault.cleanup?.problems).toHaveLength(1);
    expectVaultEmpty(h);
    expectUnshared(h, imageId);
  });

  it('cleans up a failed copy in the DR account (it is still unsealed) and takes the share back', async () => {
    h = await drHarness();
    h.rt.twin.faults.failCopies(VAULT_REGION, 'The snapshot copy failed.');
    const imageId = seedSource(h, 'web-3.1.0', h.sourceKey);

    await replicate(h, imageId);
    await h.rt.waitForIdle();

    const summary = summaryOf(h, imageId);
    const vault = summary.regions.find((r) => r.region === VAULT_REGION)!;
    expect(vault).toMatchObject({ status: 'failed', account: DR_ACCOUNT });
    expect(vault.reason).toContain('The snapshot copy failed.');
    expect(vault.cleanup?.deregistered).toHaveLength(1);
    expect(vault.cleanup?.snapshotsDeleted).toHaveLength(1);
    expectVaultEmpty(h);
    expect(summary.shares).toEqual([{ account: DR_ACCOUNT, removed: true, grantsRevoked: 1 }]);
    expectUnshared(h, imageId);
  });

  it('joins a duplicate request: one execution, one copy in the DR account', async () => {
    h = await drHarness();
    const imageId = seedSource(h, 'web-3.2.0', h.sourceKey);

    const first = await replicate(h, imageId);
    const second = await replicate(h, imageId);
    await h.rt.waitForIdle();

    // StartExecution of a running name with the same input returns that execution: both name the same one.
    expect(second.executionArn).toBe(first.executionArn);
    expect(h.rt.executions()).toHaveLength(1);
    expect(vaultImages(h).map((i) => i.state)).toEqual(['available']);
    expect(summaryOf(h, imageId).outcome).toBe('replicated');
  });
});

describe('readiness with a DR account it cannot reach', () => {
  it("reports that region's cells failed with the reason, reads the other regions, and re-drives nothing there", async () => {
    h = await drHarness();
    const imageId = seedSource(h, 'web-3.1.0', h.sourceKey);
    await replicate(h, imageId);
    await h.rt.waitForIdle();
    const executions = h.rt.executions().length;

    const run = await runReadiness({
      clients: h.rt.clientsFor('readiness'),
      policy: drPolicy({ vault: { role: 'ami-dr-not-deployed' } }),
      now: START + DAY,
      reconcile: true,
      stateMachineArnFor: (region) => h!.rt.stateMachineArn(region),
    });

    const cells = run.report.rows.find((r) => r.sourceImageId === imageId)!.cells;
    expect(cells.find((c) => c.region === OWN_REGION)).toMatchObject({ status: 'ready' });
    const vault = cells.find((c) => c.region === VAULT_REGION)!;
    expect(vault).toMatchObject({ status: 'failed', account: DR_ACCOUNT, refused: true });
    expect(vault.reason).toContain(`DR account ${DR_ACCOUNT} cannot be read`);
    expect(vault.reason).toContain(`arn:aws:iam::${DR_ACCOUNT}:role/ami-dr-not-deployed`);
    expect(run.reconciliation?.redriven).toEqual([]);
    expect(h.rt.executions()).toHaveLength(executions);
  });
});

describe('a re-drive of a source already in the DR account', () => {
  it('adopts the sealed copy as it is: replicated, one copy, nothing refused', async () => {
    h = await drHarness();
    const imageId = seedSource(h, 'web-3.3.0', h.sourceKey);
    await replicate(h, imageId);
    await h.rt.waitForIdle();
    const [copy] = vaultImages(h);

    await startOrJoinReplication(
      { clients: h.rt.clientsFor('readiness'), policy: h.rt.policy, stateMachineArn: h.rt.stateMachineArn(SOURCE) },
      SOURCE,
      imageId,
      { redrive: true },
    );
    await h.rt.waitForIdle();

    const redriven = h.rt.executions().at(-1)!;
    expect(redriven.name).toMatch(/_r1$/);
    const vault = (JSON.parse(redriven.output!) as Summary).regions.find((r) => r.region === VAULT_REGION)!;
    expect(vault).toMatchObject({
      status: 'available',
      imageId: copy!.imageId,
      adopted: true,
      applied: { sealed: true },
    });
    expect(vaultImages(h).map((i) => i.imageId)).toEqual([copy!.imageId]);
    expect(h.rt.twin.iam.log.filter((d) => d.decision !== 'Allow')).toEqual([]);
  });
});

describe("the DR account's own retention", () => {
  it('removes aged, protected copies under its own role, with their snapshots', async () => {
    h = await drHarness();
    const imageId = seedSource(h, 'web-4.0.0', h.sourceKey);
    await replicate(h, imageId);
    await h.rt.waitForIdle();
    const [copy] = vaultImages(h);
    expect(copy?.deregistrationProtection).toBe('enabled-without-cooldown');

    // The DR account runs retention over its copies: protection is released for aged replicas only.
    const policy = parsePolicy({
      regions: { sources: [SOURCE], dr: [{ region: VAULT_REGION, kmsKeyId: 'alias/ami-dr-vault' }] },
      retention: {
        replicas: { deregisterAfterDays: 30, keepLatest: 0, releaseProtection: true },
        keepReplicasOfLiveSources: false,
        allowRemovingAll: true,
      },
    });
    const clients = await h.rt.drAccountClients(DR_ACCOUNT, 'ami-dr-dr-retention');
    const young = await runRetention({ clients, policy, region: VAULT_REGION, now: START + DAY });
    expect(young.report.removed).toEqual([]);
    const aged = await runRetention({ clients, policy, region: VAULT_REGION, now: START + 40 * DAY });

    expect(aged.report.errors).toEqual([]);
    expect(aged.report.removed.map((r) => r.imageId)).toEqual([copy!.imageId]);
    expectVaultEmpty(h);
  });
});
