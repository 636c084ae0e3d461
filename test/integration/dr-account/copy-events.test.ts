import { afterEach, describe, expect, it } from 'vitest';
import type { TwinEvent } from '../../../local/twin/events.ts';
import type { TaskBinding } from '../../../local/twin/stepfunctions.ts';
import {
  DR_ACCOUNT,
  OWN_REGION,
  PRODUCTION,
  SOURCE,
  VAULT_REGION,
  drHarness,
  replicate,
  seedSource,
  summaryOf,
  vaultImages,
  type DrHarness,
} from './helpers.ts';

/**
 * A DR account's copies are seen as its own-account copies are: the DR account's rule (deploy/dr-account.yml)
 * forwards their AMI State Change events to ami-dr's bus in the DR region, which takes them under its bus policy
 * (serverless.yml), and onCopyState wakes the waiting replication once it has read the copy through the replicator
 * role. Without the bus policy the event is refused and the fallback check still finds the copy.
 */

let h: DrHarness | undefined;
afterEach(async () => {
  await h?.rt.stop();
  h = undefined;
});

const COPY_MS = 10 * 60_000;
const VAULT_BUS = `arn:aws:events:${VAULT_REGION}:${PRODUCTION}:event-bus/default`;

/** The states the vault region's branch (the policy's first DR region) of an image's execution went through. */
const vaultBranch = (h: DrHarness, imageId: string): string[] => {
  const execution = h.rt.executions().find((e) => e.input.includes(imageId));
  return (execution?.transitions ?? []).filter((t) => t.iteration === 0).map((t) => t.state);
};

/** The DR account's `available` event for its copy `copyId`, as EC2 put it on the DR account's bus. */
const availableEvent = (h: DrHarness, copyId: string): TwinEvent => {
  const found = h.rt.twin.events.history.find(
    (e) => e.account === DR_ACCOUNT && e['detail-type'] === 'EC2 AMI State Change' && e.detail.ImageId === copyId,
  );
  if (!found) throw new Error(`no AMI State Change event for ${copyId}`);
  return found;
};

/** How long after the vault copy of `imageId` became available its replication saw it (twin ms). */
const seenAfter = (h: DrHarness, imageId: string): number => {
  const vault = summaryOf(h, imageId).regions.find((r) => r.region === VAULT_REGION)!;
  return Date.parse(vault.availableAt!) - Date.parse(availableEvent(h, vault.imageId!).time);
};

/** The vault copy of `imageId` (twin record). */
const vaultCopyOf = (h: DrHarness, imageId: string) =>
  vaultImages(h).find((i) => i.tags.get('ami-dr:source-image-id') === imageId);

describe("a DR account's copy events, forwarded to the production account", () => {
  it('finalizes a DR-account copy within seconds of it becoming available, woken by its forwarded event', async () => {
    h = await drHarness(undefined, { twinOptions: { copyDurationMs: COPY_MS } });
    const imageId = seedSource(h, 'web-3.0.0', h.sourceKey);

    await replicate(h, imageId);
    await h.rt.waitForIdle();

    expect(summaryOf(h, imageId).regions.map((r) => r.status)).toEqual(['available', 'available']);
    expect(seenAfter(h, imageId)).toBeLessThanOrEqual(5_000);
    // Woken, not polled: no CheckCopy, as few transitions as an own-account copy.
    expect(vaultBranch(h, imageId)).toEqual(['StartCopy', 'WaitForCopy', 'CopyDone?', 'FinalizeCopy']);
    const copyId = vaultCopyOf(h, imageId)!.imageId;
    expect(h.rt.twin.events.crossAccount.filter((p) => p.event.detail.ImageId === copyId)).toEqual([
      expect.objectContaining({ busArn: VAULT_BUS, accepted: true }),
    ]);
    expect(h.rt.copyDeliveries.map((d) => d.outcome)).toContainEqual({
      action: 'woken',
      region: VAULT_REGION,
      imageId: copyId,
      state: 'available',
      sourceRegion: SOURCE,
    });
    expect(h.rt.twin.dynamodb.items(SOURCE, h.rt.copyWaitsTable)).toEqual([]);
    // Every call (the onCopyState role assuming the replicator role to read the copy included) was allowed.
    expect(h.rt.twin.iam.log.filter((d) => d.decision !== 'Allow').map((d) => d.request.action)).toEqual([]);
  });

  it('puts the bus policy only on the DR region whose copies the DR account owns', async () => {
    h = await drHarness();
    const bus = (region: string) => `arn:aws:events:${region}:${PRODUCTION}:event-bus/default`;
    expect(h.rt.twin.events.busPolicy(bus(VAULT_REGION))).toEqual([
      expect.objectContaining({
        Effect: 'Allow',
        Principal: { AWS: [`arn:aws:iam::${DR_ACCOUNT}:root`] },
        Action: 'events:PutEvents',
        Resource: VAULT_BUS,
      }),
    ]);
    expect(h.rt.twin.events.busPolicy(bus(OWN_REGION))).toEqual([]);
    expect(h.rt.twin.events.busPolicy(bus(SOURCE))).toEqual([]);
  });

  it('without the bus policy the event is refused, and the fallback check still finds the copy', async () => {
    h = await drHarness(undefined, { twinOptions: { copyDurationMs: COPY_MS } });
    for (const statement of h.rt.twin.events.busPolicy(VAULT_BUS))
      h.rt.twin.events.removePermission(VAULT_BUS, statement.Sid);
    const imageId = seedSource(h, 'web-3.0.1', h.sourceKey);

    await replicate(h, imageId);
    await h.rt.waitForIdle();

    const vault = summaryOf(h, imageId).regions.find((r) => r.region === VAULT_REGION)!;
    expect(vault).toMatchObject({ status: 'available', account: DR_ACCOUNT });
    expect(h.rt.twin.events.crossAccount.filter((p) => p.event.detail.ImageId === vault.imageId)).toEqual([
      expect.objectContaining({ accepted: false, reason: expect.stringContaining('resource policy') }),
    ]);
    expect(h.rt.copyDeliveries.filter((d) => (d.event as TwinEvent).region === VAULT_REGION)).toEqual([]);
    // Found by the first fallback check, 2 h after the wait began; nothing lost, the copy sealed.
    expect(vaultBranch(h, imageId)).toEqual(['StartCopy', 'WaitForCopy', 'CheckCopy', 'CopyDone?', 'FinalizeCopy']);
    expect(seenAfter(h, imageId)).toBeGreaterThan(0);
    expect(seenAfter(h, imageId)).toBeLessThanOrEqual(2 * 3600_000);
    expect(vaultCopyOf(h, imageId)?.tags.has('ami-dr:unsealed')).toBe(false);
  });

  it('completes nothing on a forged event: only the copy the execution started, read as done, wakes its wait', async () => {
    let harnessRef: DrHarness | undefined;
    const forged: unknown[] = [];
    let seededCopy = '';
    // Once the vault copy's wait is stored, events arrive on ami-dr's bus that must not wake it.
    const wrapTask = (state: string, task: TaskBinding): TaskBinding =>
      state !== 'WaitForCopy'
        ? task
        : async (input) => {
            const out = await task(input);
            const { imageId: copyId, region } = (input as { copy: { imageId: string; region: string } }).copy;
            if (region !== VAULT_REGION || forged.length > 0) return out;
            const rt = harnessRef!.rt;
            const event = (account: string, imageId: string, eventRegion = VAULT_REGION) => ({
              version: '0',
              id: `forged-${forged.length}`,
              'detail-type': 'EC2 AMI State Change',
              source: 'aws.ec2',
              account,
              time: new Date(harnessRef!.clock.now()).toISOString(),
              region: eventRegion,
              resources: [],
              detail: { ImageId: imageId, State: 'available' },
            });
            forged.push(
              // The DR account says its copy is available while it is still pending.
              event(DR_ACCOUNT, copyId),
              // Another account names the copy.
              event('333333333333', copyId),
              // The DR account names an available ami-dr copy of its own that this execution did not start.
              event(DR_ACCOUNT, seededCopy),
              // The DR account speaks for a region whose copies are ami-dr's own.
              event(DR_ACCOUNT, copyId, OWN_REGION),
            );
            for (const e of forged) await rt.putEvent(e);
            await rt.twin.settle();
            while (rt.copyDeliveries.some((d) => !d.outcome && !d.error)) await new Promise((r) => setImmediate(r));
            return out;
          };
    h = harnessRef = await drHarness(undefined, { wrapTask, twinOptions: { copyDurationMs: COPY_MS } });
    seededCopy = h.vault.seed.image(VAULT_REGION, {
      name: 'earlier-copy',
      tags: {
        'ami-dr:role': 'replica',
        'ami-dr:source-image-id': 'ami-0000000000000000a',
        'ami-dr:source-region': SOURCE,
      },
    });
    const imageId = seedSource(h, 'web-3.0.2', h.sourceKey);

    await replicate(h, imageId);
    await h.rt.waitForIdle();

    const outcomes = h.rt.copyDeliveries.filter((d) => forged.includes(d.event)).map((d) => d.outcome);
    expect(outcomes).toEqual([
      expect.objectContaining({ action: 'ignored', reason: 'copy is pending' }),
      expect.objectContaining({ action: 'ignored', reason: 'another account' }),
      expect.objectContaining({ action: 'ignored', reason: 'no replication waits for this copy' }),
      expect.objectContaining({ action: 'ignored', reason: 'another account' }),
    ]);
    // The wait went on to the real event: woken when the copy became available, not before.
    expect(vaultBranch(h, imageId)).toEqual(['StartCopy', 'WaitForCopy', 'CopyDone?', 'FinalizeCopy']);
    expect(seenAfter(h, imageId)).toBeGreaterThanOrEqual(0);
    expect(seenAfter(h, imageId)).toBeLessThanOrEqual(5_000);
  });

  it('hands the copy slot of a DR-account copy on when its forwarded event arrives', async () => {
    h = await drHarness(undefined, { twinOptions: { copyDurationMs: COPY_MS, copyQuota: 1 } });
    const first = seedSource(h, 'api-1.0.0', h.sourceKey);
    const second = seedSource(h, 'api-1.0.1', h.sourceKey);

    await replicate(h, first);
    await replicate(h, second);
    await h.rt.waitForIdle();

    expect([first, second].map((i) => summaryOf(h!, i).outcome)).toEqual(['replicated', 'replicated']);
    expect(vaultBranch(h, second).slice(0, 3)).toEqual(['StartCopy', 'WaitForSlot', 'StartCopy']);
    const firstDone = Date.parse(vaultCopyOf(h, first)!.creationDate) + COPY_MS;
    // The second copy starts the moment the first one is available: its event freed the slot at once.
    expect(Date.parse(vaultCopyOf(h, second)!.creationDate)).toBe(firstDone);
    expect(h.rt.twin.dynamodb.items(SOURCE, h.rt.copyQueueTable)).toEqual([]);
  });
});
