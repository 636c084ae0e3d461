import { afterEach, describe, expect, it } from 'vitest';
import { summarizeReport } from '../../../lib/domain/retention-report.ts';
import { applyRegion, planRegion } from '../../../lib/workflows/retention.ts';
import { daysAgo, REGION, retentionHarness, testPolicy, type RetentionHarness } from './helpers.ts';

let h: RetentionHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

const created = (ami: string) => `Created by CreateImage(i-0123456789abcdef0) for ${ami} from vol-0123456789abcdef0`;

/** An account with one true orphan and one snapshot for each reason the sweep must keep one. */
function seedSnapshots(harness: RetentionHarness): Record<string, string> {
  const { seed } = harness.twin;
  const live = seed.image(REGION, { name: 'live-1.0', creationDate: daysAgo(1) });
  const old = { startTime: daysAgo(100), sizeGiB: 50 };
  return {
    live,
    orphan: seed.snapshot(REGION, { ...old, description: created('ami-0000000000000dead') }),
    copied: seed.snapshot(REGION, {
      ...old,
      sizeGiB: 30,
      description: 'Copied for DestinationAmi ami-000000000000beef0 from SourceAmi ami-0123 for SourceSnapshot snap-1',
    }),
    young: seed.snapshot(REGION, { startTime: daysAgo(3), description: created('ami-0000000000000dead') }),
    namesLive: seed.snapshot(REGION, { ...old, description: created(live) }),
    shared: seed.snapshot(REGION, {
      ...old,
      description: created('ami-0000000000000dead'),
      createVolumePermissions: [{ userId: '111122223333' }],
    }),
    backup: seed.snapshot(REGION, {
      ...old,
      description: created('ami-0000000000000dead'),
      tags: { 'aws:backup:source-resource': 'arn:aws:ec2:us-east-1::image/ami-0000000000000dead' },
    }),
    manual: seed.snapshot(REGION, { ...old, description: 'before the upgrade' }),
  };
}

describe('orphan sweep on the twin', () => {
  it('dry-run by default: lists the orphans in the plan with their GiB and monthly saving, deletes nothing', async () => {
    h = await retentionHarness({}, testPolicy({ orphanSweep: { enabled: true, minAgeDays: 30 } }));
    const s = seedSnapshots(h);
    const before = await h.snapshotIds();

    const { report } = await h.run({ dryRun: true });

    expect(report.orphanSweep?.candidates.map((c) => c.snapshotId).sort()).toEqual([s.orphan, s.copied].sort());
    expect(report.orphanSweep?.gib).toBe(80);
    expect(report.orphanSweep?.estimatedMonthlySaving).toBe(4);
    expect(summarizeReport(report)).toContain(
      'orphan sweep (dry-run): 2 orphaned snapshots of 8 older than 30 days, 80 GiB to free (~$4.00/month)',
    );
    expect(summarizeReport(report)).toContain(`${s.orphan} (50 GiB) of ami-0000000000000dead, gone`);
    expect(await h.snapshotIds()).toEqual(before);
  });

  it('with dryRun: false, deletes exactly the orphans on a real run and nothing on a dry-run', async () => {
    h = await retentionHarness({}, testPolicy({ orphanSweep: { enabled: true, dryRun: false, minAgeDays: 30 } }));
    const s = seedSnapshots(h);
    const before = await h.snapshotIds();

    const planned = await h.run({ dryRun: true });
    expect(planned.report.orphanSweep?.dryRun).toBe(true);
    expect(await h.snapshotIds()).toEqual(before);

    const { report } = await h.run();

    expect(report.orphanSweep?.deleted.sort()).toEqual([s.orphan, s.copied].sort());
    expect(await h.snapshotIds()).toEqual(before.filter((id) => id !== s.orphan && id !== s.copied));
    expect(summarizeReport(report)).toContain('orphan sweep: 2 orphaned snapshots deleted of 2 found, 80 GiB freed');
  });

  it('applying a saved plan, only lists: the orphans were not in the plan', async () => {
    const policy = testPolicy({ orphanSweep: { enabled: true, dryRun: false, minAgeDays: 30 } });
    h = await retentionHarness({}, policy);
    const s = seedSnapshots(h);
    const before = await h.snapshotIds();
    const options = {
      clients: h.clients,
      policy,
      region: REGION,
      accountId: h.twin.accountId,
      now: h.clock.now(),
      clock: () => h!.clock.now(),
      dryRun: false,
    };
    const saved = { region: REGION, fingerprint: '', actions: [], errors: [], warnings: [] };

    const { report } = await applyRegion(await planRegion(options, saved), options);

    expect(report.dryRun).toBe(false);
    expect(report.orphanSweep?.dryRun).toBe(true);
    expect(report.orphanSweep?.candidates.map((c) => c.snapshotId).sort()).toEqual([s.orphan, s.copied].sort());
    expect(await h.snapshotIds()).toEqual(before);
  });

  it('is off unless the policy turns it on', async () => {
    h = await retentionHarness();
    seedSnapshots(h);
    const { report } = await h.run({ dryRun: true });
    expect(report.orphanSweep).toBeUndefined();
  });
});
