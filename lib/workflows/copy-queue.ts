import { dynamoDbClient, sfnClient } from '../aws/clients.ts';
import { oldestSlotWaits, putSlotWait, queueKey, slotWaitOrder, takeSlotWait } from '../aws/copy-queue.ts';
import { sendTaskSuccess } from '../aws/sfn.ts';
import { awaitSlotInputSchema, leaveSlotQueueInputSchema, parseStep, SLOT_WAIT } from '../domain/replication-steps.ts';
import type { ReplicationDeps } from './replication.ts';
import { logger } from '../observability.ts';

/**
 * The copy-slot queue. A StartCopy that EC2 refuses for the DR region's concurrent-copy quota parks (WaitForSlot, a
 * `.waitForTaskToken` task): its token goes into the queue table of its source region, in the order its execution
 * started. When a copy in that region ends — its replication finalizes it, or cleans it up — that replication hands
 * the slot to one of the oldest waiters of every source region's queue, which goes back to StartCopy at once instead
 * of after a back-off. A wake-up that is lost (a Lambda failing between taking the token and using it) costs the waiter its
 * WaitForSlot timeout, after which it retries StartCopy by itself; parks per copy are bounded (SLOT_WAIT.maxParks).
 */

export interface QueueDeps extends ReplicationDeps {
  /** The copy-queue table (the same name in every source region). */
  queueTable: string;
}

/** What a waiter's own tasks (park, leave) need: no policy. */
export type SlotWaitDeps = Pick<QueueDeps, 'clients' | 'queueTable' | 'now' | 'log'>;

/** A waiter's item outlives its longest possible wait by a day, then the table's TTL removes what nobody took. */
const SLOT_WAIT_TTL_SECONDS = SLOT_WAIT.timeoutSeconds + 24 * 3600;

/** What the woken waiter's task returns, into `$.queue`: its next StartCopy is told how often it has parked. */
export interface SlotHandedOn {
  parks: number;
}

/** The Lambda behind WaitForSlot: puts the task token in the queue of the target's region (and account). */
export async function awaitCopySlot(
  rawInput: unknown,
  deps: SlotWaitDeps,
): Promise<{ result: 'waiting'; queue: string; order: string }> {
  const input = parseStep(awaitSlotInputSchema, rawInput, 'WaitForSlot');
  const { source, target } = input;
  const now = deps.now ? deps.now() : new Date();
  const wait = {
    queue: queueKey(target.region, target.account),
    order: slotWaitOrder(input.since, input.execution),
    token: input.token,
    sourceRegion: source.region,
    parks: input.parks,
    expiresAt: Math.floor(now.getTime() / 1000) + SLOT_WAIT_TTL_SECONDS,
  };
  await putSlotWait(dynamoDbClient(deps.clients, source.region), deps.queueTable, wait);
  (deps.log ?? logger).info('copy waits for a slot', {
    region: target.region,
    sourceImageId: source.imageId,
    parks: input.parks,
  });
  return { result: 'waiting', queue: wait.queue, order: wait.order };
}

/**
 * SlotWaitEnded: the wait timed out (a lost wake-up) or the park failed. Removes the branch's item, if a waker has
 * not taken it, so nothing outlives the replication; the branch then retries StartCopy, this wait counted.
 */
export async function leaveCopySlotQueue(rawInput: unknown, deps: SlotWaitDeps): Promise<SlotHandedOn> {
  const input = parseStep(leaveSlotQueueInputSchema, rawInput, 'SlotWaitEnded');
  const key = {
    queue: queueKey(input.target.region, input.target.account),
    order: slotWaitOrder(input.since, input.execution),
  };
  const left = await takeSlotWait(dynamoDbClient(deps.clients, input.source.region), deps.queueTable, key);
  (deps.log ?? logger).info('copy slot wait ended without a wake-up', {
    region: input.target.region,
    sourceImageId: input.source.imageId,
    parks: input.parks,
    removed: Boolean(left),
  });
  return { parks: input.parks };
}

/**
 * How many of the oldest waiters a hand-off reads at once: copies of a region tend to end together (they started
 * together), and their hand-offs, all racing for the single oldest waiter, would mostly lose. Each starts at a random
 * one of the oldest (a region's default quota: 100) and goes on in order, so together they wake the oldest ones.
 */
export const HANDOFF_PAGE = 100;
/** Pages read before a hand-off gives up (each waiter in them taken by another hand-off, or its wait over). */
const MAX_HANDOFF_PAGES = 5;

export type HandOff = { woken: true; sourceRegion: string; parks: number } | { woken: false; skipped: number };

/**
 * A copy slot of `region` (in `account`) is free: wakes one of the oldest waiters across every source region's
 * queue. A waiter whose task is over (timed out: it is retrying StartCopy by itself) is removed and another woken.
 */
export async function handOffCopySlot(
  deps: QueueDeps,
  region: string,
  account: string | undefined,
  random: () => number = Math.random,
): Promise<HandOff> {
  const queue = queueKey(region, account);
  let skipped = 0;
  for (let page = 0; page < MAX_HANDOFF_PAGES; page++) {
    const found = await Promise.all(
      deps.policy.regions.sources.map(async (tableRegion) =>
        (await oldestSlotWaits(dynamoDbClient(deps.clients, tableRegion), deps.queueTable, queue, HANDOFF_PAGE)).map(
          (key) => ({ ...key, tableRegion }),
        ),
      ),
    );
    const oldest = found
      .flat()
      .sort((a, b) => Buffer.compare(Buffer.from(a.order), Buffer.from(b.order)))
      .slice(0, HANDOFF_PAGE);
    if (oldest.length === 0) return { woken: false, skipped };
    const start = Math.floor(random() * oldest.length);
    for (let i = 0; i < oldest.length; i++) {
      const key = oldest[(start + i) % oldest.length]!;
      const taken = await takeSlotWait(dynamoDbClient(deps.clients, key.tableRegion), deps.queueTable, key);
      if (!taken) continue; // another hand-off took it first
      const output: SlotHandedOn = { parks: taken.parks };
      if (await sendTaskSuccess(sfnClient(deps.clients, taken.sourceRegion), taken.token, output)) {
        return { woken: true, sourceRegion: taken.sourceRegion, parks: taken.parks };
      }
      skipped++;
    }
  }
  return { woken: false, skipped };
}

/**
 * Finalize's and cleanup's hand-off: best effort, because the copy's own outcome must not fail for it; a waiter
 * that is not woken retries StartCopy after its WaitForSlot timeout.
 */
export async function releaseCopySlot(
  deps: ReplicationDeps & { queueTable?: string | undefined },
  copy: { region: string; account?: string | undefined; imageId: string },
): Promise<void> {
  const { queueTable } = deps;
  if (!queueTable) return;
  const log = deps.log ?? logger;
  try {
    const handOff = await handOffCopySlot({ ...deps, queueTable }, copy.region, copy.account);
    if (handOff.woken) log.info('copy slot handed on', { region: copy.region, imageId: copy.imageId, ...handOff });
  } catch (error) {
    log.warn('copy slot not handed on', {
      region: copy.region,
      imageId: copy.imageId,
      error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
    });
  }
}
