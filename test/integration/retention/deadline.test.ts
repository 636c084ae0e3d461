import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTwin, type Twin } from '../../../local/twin/twin.ts';
import { REGION, runUnderFaults } from './helpers.ts';

/**
 * The deadline is a bound in real time: with EC2 throttling at 5% of AWS's rates and 30% of DeregisterImage calls
 * failing with 503, a run with 25 s left ends, report made, within 27 s, and reports exactly what it left.
 */

const BUDGET_MS = 25_000;

describe('retention under a deadline (real time)', () => {
  let twin: Twin;
  beforeAll(async () => {
    twin = await startTwin({ accountId: '111122223333' });
  });
  afterAll(async () => {
    await twin.stop();
  });

  it('ends within 2 s of a 25 s budget under 30% 503s and 5% throttling, naming every image left for the next run', async () => {
    // Prepare, Act: 80 aged images, far more than 25 s of DeregisterImage at 5% of AWS's rate can remove.
    const { run, tookMs } = await runUnderFaults(twin, BUDGET_MS);

    // Assess: on time, and what was done plus what was left is the whole plan.
    expect(tookMs).toBeLessThan(BUDGET_MS + 2_000);
    const { report } = run;
    expect(report.complete).toBe(false);
    const planned = report.planned.deregister.map((d) => d.imageId);
    expect(planned).toHaveLength(79);
    const removed = report.removed.map((r) => r.imageId);
    const left = report.pending.map((p) => p.imageId);
    const failed = report.errors.flatMap((e) => (e.imageId ? [e.imageId] : []));
    expect(left.length).toBeGreaterThan(0);
    expect(new Set([...removed, ...left, ...failed])).toEqual(new Set(planned));
    expect(report.counts.pending).toBe(left.length);
    // What it says is left is still registered (unless its call was cut in flight); what it removed is gone.
    const registered = new Set(
      [...twin.state.region(REGION).images.values()].filter((i) => i.state === 'available').map((i) => i.imageId),
    );
    for (const p of report.pending) if (!p.interrupted) expect(registered.has(p.imageId)).toBe(true);
    for (const id of removed) expect(registered.has(id)).toBe(false);
  }, 40_000);
});
