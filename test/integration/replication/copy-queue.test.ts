import { afterEach, describe, expect, it } from 'vitest';
import type { TaskBinding } from '../../../local/twin/stepfunctions.ts';
import { SLOT_WAIT } from '../../../lib/domain/replication-steps.ts';
import { handOffCopySlot, type HandOff } from '../../../lib/workflows/copy-queue.ts';
import { takeSlotWait } from '../../../lib/aws/copy-queue.ts';
import { dynamoDbClient } from '../../../lib/aws/clients.ts';
import { DR, SOURCE, START, copiesOf, createImage, harness, summaries, testPolicy, type Harness } from './helpers.ts';

/**
 * Copies refused for a DR region's copy quota wait in the copy-slot queue and are woken when a copy of that region
 * ends: started the moment the slot frees, by their timeout if the wake-up is lost, woken once however many try.
 */

let h: Harness | undefined;
afterEach(async () => {
  await h?.rt.stop();
  h = undefined;
});

const COPY_MS = 10 * 60_000;

/** The states one region's branch of an image's execution went through. */
const branchStates = (h: Harness, imageId: string, region: string): string[] => {
  const execution = h.rt.executions().find((e) => e.input.includes(imageId));
  const index = DR.indexOf(region as (typeof DR)[number]);
  return (execution?.transitions ?? []).filter((t) => t.iteration === index).map((t) => t.state);
};

/** When the copy of `imageId` in `region` was made (its CreationDate), in twin ms. */
const copyStartedAt = async (h: Harness, region: string, imageId: string): Promise<number> => {
  const [copy] = await copiesOf(h, region, imageId);
  return Date.parse(copy?.CreationDate ?? '');
};

/** Neither table keeps anything once every replication has ended. */
const tablesEmpty = (h: Harness) => {
  expect(h.rt.twin.dynamodb.items(SOURCE, h.rt.copyQueueTable)).toEqual([]);
  expect(h.rt.twin.dynamodb.items(SOURCE, h.rt.copyWaitsTable)).toEqual([]);
};

/** Two images one after the other, with room for one copy per DR region: the second one's copies must wait. */
async function twoImages(h: Harness): Promise<[string, string]> {
  const first = await createImage(h, 'first');
  const second = await createImage(h, 'second');
  await h.rt.waitForIdle();
  return [first, second];
}

describe('copies refused for the copy quota wait in a queue', () => {
  it('parks a refused copy and starts it the moment a copy of its region becomes available', async () => {
    h = await harness({ twinOptions: { copyDurationMs: COPY_MS, copyQuota: 1 } });
    const [first, second] = await twoImages(h);

    expect(summaries(h.rt).map((s) => s.outcome)).toEqual(['replicated', 'replicated']);
    for (const region of DR) {
      expect(branchStates(h, second, region).slice(0, 3)).toEqual(['StartCopy', 'WaitForSlot', 'StartCopy']);
      const firstDone = (await copyStartedAt(h, region, first)) + COPY_MS;
      // Woken by the first copy's end: no back-off between the slot freeing and the second copy starting.
      expect(await copyStartedAt(h, region, second)).toBe(firstDone);
    }
    expect(branchStates(h, first, DR[0])).not.toContain('WaitForSlot');
    tablesEmpty(h);
  });

  it('copies ending together hand their slots to as many waiters: all start at once, none by timeout', async () => {
    // Enough copies ending at once that hand-offs all racing for the single oldest waiter would run out of tries.
    const QUOTA = 30;
    const region = DR[0];
    h = await harness({
      policy: testPolicy({ regions: { sources: [SOURCE], dr: [{ region, kmsKeyId: 'alias/ami-dr' }] } }),
      twinOptions: { copyDurationMs: COPY_MS, copyQuota: QUOTA },
    });
    const imageIds: string[] = [];
    for (let i = 0; i < 2 * QUOTA; i++) imageIds.push(await createImage(h, `together-${i}`));
    await h.rt.waitForIdle();

    expect(summaries(h.rt).filter((s) => s.outcome === 'replicated')).toHaveLength(2 * QUOTA);
    const started = await Promise.all(imageIds.map((id) => copyStartedAt(h!, region, id)));
    const firstRoundEnd = Math.min(...started) + COPY_MS;
    const parked = imageIds.filter((id) => branchStates(h!, id, region).includes('WaitForSlot'));
    expect(parked).toHaveLength(QUOTA);
    for (const id of parked) {
      expect(branchStates(h, id, region)).not.toContain('SlotWaitEnded');
      expect(await copyStartedAt(h, region, id)).toBe(firstRoundEnd);
    }
    tablesEmpty(h);
  }, 180_000);

  it('a lost wake-up is made up for by the wait timeout: the copy starts by itself', async () => {
    let ref: Harness | undefined;
    // A waker takes each parked token and is lost before using it: the queue is empty when the slot frees.
    const wrapTask = (state: string, task: TaskBinding): TaskBinding =>
      state !== 'WaitForSlot'
        ? task
        : async (input) => {
            const parked = (await task(input)) as { queue: string; order: string };
            await takeSlotWait(queueOf(ref!), ref!.rt.copyQueueTable, parked);
            return parked;
          };
    h = ref = await harness({ wrapTask, twinOptions: { copyDurationMs: COPY_MS, copyQuota: 1 } });
    const [first, second] = await twoImages(h);

    expect(summaries(h.rt).map((s) => s.outcome)).toEqual(['replicated', 'replicated']);
    for (const region of DR) {
      expect(branchStates(h, second, region).slice(0, 4)).toEqual([
        'StartCopy',
        'WaitForSlot',
        'SlotWaitEnded',
        'StartCopy',
      ]);
      // Not when the first copy ended (10 min), but when the wait timed out.
      const waited = (await copyStartedAt(h, region, second)) - (await copyStartedAt(h, region, first));
      expect(waited).toBe(SLOT_WAIT.timeoutSeconds * 1000);
    }
    tablesEmpty(h);
  });

  it('two wakers racing for one waiter: the token is used once, the other waker finds the queue empty', async () => {
    let ref: Harness | undefined;
    const handOffs: HandOff[] = [];
    // At the first park of each region, two copy ends hand their slots on at the same moment.
    const wrapTask = (state: string, task: TaskBinding): TaskBinding =>
      state !== 'WaitForSlot'
        ? task
        : async (input) => {
            const parked = await task(input);
            // A token task's binding gets the Lambda's payload.
            const { target, parks } = input as { target: { region: string }; parks: number };
            if (parks === 1) {
              const deps = { clients: ref!.rt.clientsFor('finalizeCopy', SOURCE), policy: ref!.rt.policy };
              const queueTable = ref!.rt.copyQueueTable;
              handOffs.push(
                ...(await Promise.all([
                  handOffCopySlot({ ...deps, queueTable }, target.region, undefined),
                  handOffCopySlot({ ...deps, queueTable }, target.region, undefined),
                ])),
              );
            }
            return parked;
          };
    h = ref = await harness({ wrapTask, twinOptions: { copyDurationMs: COPY_MS, copyQuota: 1 } });
    const [, second] = await twoImages(h);

    expect(summaries(h.rt).map((s) => s.outcome)).toEqual(['replicated', 'replicated']);
    expect(handOffs.filter((o) => o.woken)).toHaveLength(DR.length);
    expect(handOffs.filter((o) => !o.woken)).toEqual(DR.map(() => ({ woken: false, skipped: 0 })));
    for (const region of DR) {
      // Woken once while the quota was still full: refused again, parked again, then woken by the first copy's end.
      expect(branchStates(h, second, region).slice(0, 5)).toEqual([
        'StartCopy',
        'WaitForSlot',
        'StartCopy',
        'WaitForSlot',
        'StartCopy',
      ]);
    }
    tablesEmpty(h);
  });

  it('parks a bounded number of times: a quota that never frees fails the region, and nothing is left behind', async () => {
    h = await harness({ twinOptions: { copyDurationMs: COPY_MS, copyQuota: 0 } });
    const imageId = await createImage(h, 'never');
    await h.rt.waitForIdle();

    const [summary] = summaries(h.rt);
    expect(summary?.outcome).not.toBe('replicated');
    for (const region of DR) {
      const states = branchStates(h, imageId, region);
      expect(states.filter((s) => s === 'WaitForSlot')).toHaveLength(SLOT_WAIT.maxParks);
      expect(states.filter((s) => s === 'StartCopy')).toHaveLength(SLOT_WAIT.maxParks + 1);
      expect(summary?.regions.find((r) => r.region === region)).toMatchObject({
        status: 'failed',
        error: 'ResourceLimitExceeded',
      });
    }
    expect(h.clock.now() - START).toBeGreaterThanOrEqual(SLOT_WAIT.maxParks * SLOT_WAIT.timeoutSeconds * 1000);
    tablesEmpty(h);
  });
});

const queueOf = (h: Harness) => dynamoDbClient(h.rt.clientsFor('finalizeCopy', SOURCE), SOURCE);
