import { CopyImageCommand } from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, it } from 'vitest';
import type { TwinEvent } from '../../../local/twin/events.ts';
import type { TaskBinding } from '../../../local/twin/stepfunctions.ts';
import { DR, SOURCE, START, copiesOf, createImage, harness, summaries, type Harness } from './helpers.ts';

/**
 * The copy's wait is woken by its AMI State Change event in the DR region (onCopyState), with fallback checks for
 * lost events: early, lost, duplicate and failed events, and events for copies ami-dr did not make.
 */

let h: Harness | undefined;
afterEach(async () => {
  await h?.rt.stop();
  h = undefined;
});

const COPY_MS = 60_000;

/** The states one region's branch went through. */
const branchStates = (h: Harness, region: string): string[] => {
  const [execution] = h.rt.executions();
  const index = DR.indexOf(region as (typeof DR)[number]);
  return (execution?.transitions ?? []).filter((t) => t.iteration === index).map((t) => t.state);
};

const copyEvents = (h: Harness, state: string): TwinEvent[] =>
  h.rt.twin.events.history.filter(
    (e) => e['detail-type'] === 'EC2 AMI State Change' && e.detail.State === state && DR.includes(e.region as never),
  );

/** Resolves once every copy event delivered so far has been handled. */
async function copyEventsHandled(h: Harness): Promise<void> {
  await h.rt.twin.settle();
  while (h.rt.copyDeliveries.some((d) => !d.outcome && !d.error)) await new Promise((r) => setImmediate(r));
}

describe('copy completion events wake the waiting replication', () => {
  it('an event that comes before the wait began is not lost: the wait checks once and completes itself', async () => {
    let harnessRef: Harness | undefined;
    // Between StartCopy and WaitForCopy, the copy finishes and its event is handled while nobody waits yet.
    const wrapTask = (state: string, task: TaskBinding): TaskBinding =>
      state !== 'StartCopy'
        ? task
        : async (input) => {
            const out = await task(input);
            harnessRef!.clock.advance(COPY_MS);
            await copyEventsHandled(harnessRef!);
            return out;
          };
    h = harnessRef = await harness({ wrapTask, twinOptions: { copyDurationMs: COPY_MS } });
    const imageId = await createImage(h, 'early-event');
    await h.rt.waitForIdle();

    const [summary] = summaries(h.rt);
    expect(summary?.outcome).toBe('replicated');
    expect(h.rt.copyDeliveries.map((d) => d.outcome)).toEqual(
      DR.map(() => expect.objectContaining({ action: 'ignored', reason: 'no replication waits for this copy' })),
    );
    for (const region of DR) {
      expect(branchStates(h, region)).toEqual(['StartCopy', 'WaitForCopy', 'CopyDone?', 'FinalizeCopy']);
      expect(await copiesOf(h, region, imageId)).toHaveLength(1);
    }
    // Every token was used and removed.
    expect(h.rt.twin.dynamodb.items(SOURCE, h.rt.copyWaitsTable)).toEqual([]);
  });

  it('a lost event is made up for by the fallback check: the copy is seen at the first one, 2 h after the wait began', async () => {
    h = await harness({ loseCopyEvent: () => true, twinOptions: { copyDurationMs: COPY_MS } });
    await createImage(h, 'lost-event');
    await h.rt.waitForIdle();

    const [summary] = summaries(h.rt);
    expect(summary?.outcome).toBe('replicated');
    expect(h.rt.copyDeliveries).toEqual([]);
    for (const region of DR) {
      expect(branchStates(h, region)).toEqual(['StartCopy', 'WaitForCopy', 'CheckCopy', 'CopyDone?', 'FinalizeCopy']);
      const result = summary!.regions.find((r) => r.region === region)!;
      const available = copyEvents(h, 'available').find((e) => e.detail.ImageId === result.imageId)!;
      const late = Date.parse(result.availableAt!) - Date.parse(available.time);
      expect(late).toBeGreaterThan(0);
      expect(late).toBeLessThanOrEqual(2 * 3600_000);
    }
  });

  it('a duplicate event wakes the wait once; the other copy of it, and a late one after the end, are ignored', async () => {
    h = await harness({ twinOptions: { copyDurationMs: COPY_MS } });
    const duplicated = new Set<string>();
    const harnessRef = h;
    // EventBridge delivers at least once: each copy's event arrives twice, at once.
    h.rt.twin.events.subscribe((event) => {
      if (event['detail-type'] !== 'EC2 AMI State Change' || duplicated.has(event.id)) return;
      duplicated.add(event.id);
      void harnessRef.rt.putEvent(event);
    });
    const imageId = await createImage(h, 'duplicate-event');
    await h.rt.waitForIdle();

    expect(h.rt.executions().map((e) => e.status)).toEqual(['SUCCEEDED']);
    expect(summaries(h.rt)[0]?.outcome).toBe('replicated');
    const outcomes = h.rt.copyDeliveries.map((d) => d.outcome);
    expect(outcomes.filter((o) => o?.action === 'woken')).toHaveLength(DR.length);
    expect(outcomes.filter((o) => o?.action === 'ignored')).toHaveLength(DR.length);
    for (const region of DR) expect(await copiesOf(h, region, imageId)).toHaveLength(1);
    // Woken by the event: twin time never went on to the waits' timeouts (2 h), not even after the end.
    expect(h.clock.now() - START).toBeLessThan(10 * 60_000);

    // Hours later, the event once more: nobody waits, nothing changes.
    h.clock.advance(6 * 3600_000);
    await h.rt.putEvent(copyEvents(h, 'available')[0]);
    await copyEventsHandled(h);
    await h.rt.waitForIdle();
    expect(h.rt.copyDeliveries.at(-1)?.outcome).toMatchObject({
      action: 'ignored',
      reason: 'no replication waits for this copy',
    });
    expect(h.rt.executions()).toHaveLength(1);
  });

  it('a failed event goes straight to cleanup: the copy is removed and the summary reports the region failed', async () => {
    h = await harness({ twinOptions: { copyDurationMs: COPY_MS } });
    h.rt.twin.faults.failCopies('eu-west-1', 'Snapshot copy failed (injected).');
    const imageId = await createImage(h, 'failed-event');
    await h.rt.waitForIdle();

    const [summary] = summaries(h.rt);
    expect(summary).toMatchObject({ outcome: 'partial', succeeded: 1, failed: 1 });
    expect(summary!.regions.find((r) => r.region === 'eu-west-1')).toMatchObject({
      status: 'failed',
      error: 'CopyFailedError',
      reason: expect.stringContaining('Snapshot copy failed'),
    });
    expect(h.rt.copyDeliveries.map((d) => d.outcome)).toContainEqual(
      expect.objectContaining({ action: 'woken', region: 'eu-west-1', state: 'failed' }),
    );
    // Woken by the event (no fallback check), then cleaned up at the time it failed.
    expect(branchStates(h, 'eu-west-1')).toEqual(['StartCopy', 'WaitForCopy', 'CopyDone?', 'CleanupCopy']);
    expect((await copiesOf(h, 'eu-west-1', imageId)).filter((i) => i.State !== 'deregistered')).toEqual([]);
    expect(await copiesOf(h, 'us-west-2', imageId)).toHaveLength(1);
  });

  it('an event for a copy ami-dr did not make is ignored, and changes nothing', async () => {
    h = await harness({ twinOptions: { copyDurationMs: COPY_MS } });
    const base = h.rt.twin.seed.image(SOURCE, { name: 'someone-elses' });
    const out = await h
      .ec2('us-west-2')
      .send(new CopyImageCommand({ SourceRegion: SOURCE, SourceImageId: base, Name: 'their-own-copy' }));
    h.clock.advance(COPY_MS);
    await copyEventsHandled(h);
    await h.rt.waitForIdle();

    expect(h.rt.copyDeliveries.map((d) => d.outcome)).toEqual([
      { action: 'ignored', reason: 'not an ami-dr copy', region: 'us-west-2', imageId: out.ImageId },
    ]);
    expect(h.rt.executions()).toEqual([]);
    expect(h.clock.now()).toBe(START + COPY_MS);
  });
});
