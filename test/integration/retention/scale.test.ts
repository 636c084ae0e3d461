import { afterEach, describe, expect, it } from 'vitest';
import { daysAgo, REGION, retentionHarness, type RetentionHarness } from './helpers.ts';

let h: RetentionHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

/** Every image the twin reported deregistered (AMI State Change events), with how often. */
function deregistrations(harness: RetentionHarness): Map<string, number> {
  const seen = new Map<string, number>();
  harness.twin.events.subscribe((e) => {
    if (e['detail-type'] !== 'EC2 AMI State Change' || e.detail.State !== 'deregistered') return;
    const id = String(e.detail.ImageId);
    seen.set(id, (seen.get(id) ?? 0) + 1);
  });
  return seen;
}

describe('retention at scale on the twin', () => {
  it('throttling on: paced calls, no failures', async () => {
    h = await retentionHarness({ throttling: { enabled: true, scale: 0.1 } });
    for (let i = 0; i < 60; i++) h.twin.seed.image(REGION, { name: `svc-${i}`, creationDate: daysAgo(100 + i) });
    const start = h.clock.now();
    // The pacer knows the account's buckets are a tenth of AWS's (burst 10, 0.5 DeregisterImage/s).
    const { report } = await h.run({ rateScale: 0.1 });
    expect(report.errors).toEqual([]);
    expect(report.counts.removed).toBe(59);
    // 59 removals through a bucket of 10 refilling at 0.5/s: the clock moved by the refill, ~98 s.
    expect(h.clock.now() - start).toBeGreaterThanOrEqual(95_000);
    expect((await h.images()).length).toBe(1);
  });

  it('10,000 aged images over several time-budgeted runs: nothing removed twice, nothing left behind', async () => {
    h = await retentionHarness({ throttling: { enabled: true, scale: 1 } });
    for (let i = 0; i < 10_000; i++)
      h.twin.seed.image(REGION, { name: `fleet${i % 10}-${i}`, creationDate: daysAgo(100 + i / 1000) });
    const seen = deregistrations(h);
    const snapshotsBefore = await h.snapshotIds();

    // At AWS's rates (100 at once, then 5 DeregisterImage/s) a 10-minute budget fits ~3,000 removals: 4 runs.
    const runs: { removed: number; alreadyGone: number; pending: number }[] = [];
    for (let i = 0; i < 8; i++) {
      const { report } = await h.run({ now: h.clock.now(), deadline: h.clock.now() + 600_000, concurrency: 8 });
      expect(report.errors).toEqual([]);
      runs.push({
        removed: report.counts.removed,
        alreadyGone: report.counts.alreadyGone,
        pending: report.counts.pending,
      });
      if (report.complete) break;
      h.clock.advance(3_600_000);
    }
    await h.twin.settle();

    expect(runs.length).toBeGreaterThanOrEqual(3);
    expect(runs.at(-1)?.pending).toBe(0);
    expect(runs.reduce((n, r) => n + r.removed, 0)).toBe(9_990);
    expect(runs.every((r) => r.alreadyGone === 0)).toBe(true);
    expect(seen.size).toBe(9_990);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    const left = await h.images();
    expect(left.map((i) => i.Name).sort()).toEqual(Array.from({ length: 10 }, (_, f) => `fleet${f}-${f}`));
    const snapshotsLeft = await h.snapshotIds();
    expect(snapshotsLeft).toHaveLength(10);
    expect(snapshotsLeft.every((s) => snapshotsBefore.includes(s))).toBe(true);
    // 20,000+ calls to the twin (the journal's CreateTags beside each DeregisterImage): about 2 min on a busy machine.
  }, 240_000);
});
