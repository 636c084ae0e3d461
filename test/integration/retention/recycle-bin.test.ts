import { CreateRuleCommand } from '@aws-sdk/client-rbin';
import { afterEach, describe, expect, it } from 'vitest';
import { rbinClient } from '../../../lib/aws/clients.ts';
import { summarizeReport } from '../../../lib/domain/retention-report.ts';
import { DAY, daysAgo, REGION, retentionHarness, type RetentionHarness } from './helpers.ts';

/**
 * Recycle Bin rules: what they retain is deleted but still billed until the rule's period ends, so the report
 * counts it as in the bin until then, not as freed.
 */
describe('retention with Recycle Bin rules', () => {
  let h: RetentionHarness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  it('reports snapshots a tag-level rule retains as in the bin until the period ends, and frees the rest now', async () => {
    // Prepare: snapshots tagged Team=web are kept 7 days, every AMI (Region-level rule) 10 days.
    h = await retentionHarness();
    const { seed } = h.twin;
    const rbin = rbinClient(h.clients, REGION);
    await rbin.send(
      new CreateRuleCommand({
        ResourceType: 'EBS_SNAPSHOT',
        RetentionPeriod: { RetentionPeriodValue: 7, RetentionPeriodUnit: 'DAYS' },
        ResourceTags: [{ ResourceTagKey: 'Team', ResourceTagValue: 'web' }],
      }),
    );
    await rbin.send(
      new CreateRuleCommand({
        ResourceType: 'EC2_IMAGE',
        RetentionPeriod: { RetentionPeriodValue: 10, RetentionPeriodUnit: 'DAYS' },
      }),
    );
    const webSnapshot = seed.snapshot(REGION, { sizeGiB: 30, tags: { Team: 'web' } });
    const dbSnapshot = seed.snapshot(REGION, { sizeGiB: 20, tags: { Team: 'db' } });
    seed.image(REGION, { name: 'web-9.0', creationDate: daysAgo(1) });
    seed.image(REGION, { name: 'db-9.0', creationDate: daysAgo(1) });
    const web = seed.image(REGION, { name: 'web-1.0', creationDate: daysAgo(200), snapshotIds: [webSnapshot] });
    const db = seed.image(REGION, { name: 'db-1.0', creationDate: daysAgo(200), snapshotIds: [dbSnapshot] });

    // Act
    const dryRun = (await h.run({ dryRun: true })).report;
    const { report } = await h.run();

    // Assess: both snapshots deleted; only the untagged one freed now.
    expect(report.counts.snapshotsDeleted).toBe(2);
    expect(report.gibFreed).toBe(20);
    expect(report.estimatedMonthlySaving).toBe(1);
    expect(dryRun.gibFreed).toBe(20);
    expect(dryRun.recycleBin.gib).toBe(30);
    const day = (n: number): string => new Date(h!.clock.now() + n * DAY).toISOString().slice(0, 10);
    expect(report.recycleBin.gib).toBe(30);
    expect(report.recycleBin.snapshots).toEqual([expect.objectContaining({ snapshotId: webSnapshot, sizeGiB: 30 })]);
    expect(report.recycleBin.snapshots[0]?.until.slice(0, 10)).toBe(day(7));
    expect(report.recycleBin.images.map((i) => i.imageId).sort()).toEqual([db, web].sort());
    expect(report.recycleBin.until?.slice(0, 10)).toBe(day(10));
    expect(report.recycleBin.rules).toEqual([
      expect.stringMatching(/AMIs all kept 10 days/),
      expect.stringMatching(/EBS snapshots tagged Team=web kept 7 days/),
    ]);
    expect(summarizeReport(report)).toMatch(/20 GiB freed now .*, 30 GiB in the Recycle Bin until \d{4}-\d\d-\d\d/);
  });

  it('frees everything now where the region has no rule', async () => {
    h = await retentionHarness();
    const snapshot = h.twin.seed.snapshot(REGION, { sizeGiB: 30, tags: { Team: 'web' } });
    h.twin.seed.image(REGION, { name: 'web-9.0', creationDate: daysAgo(1) });
    h.twin.seed.image(REGION, { name: 'web-1.0', creationDate: daysAgo(200), snapshotIds: [snapshot] });

    const { report } = await h.run();

    expect(report.gibFreed).toBe(30);
    expect(report.recycleBin).toEqual({ rules: [], images: [], snapshots: [], gib: 0 });
  });
});
