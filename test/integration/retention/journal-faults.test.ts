import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { ec2Client, s3Client } from '../../../lib/aws/clients.ts';
import { JOURNAL_PREFIX } from '../../../lib/domain/journal.ts';
import type { RetentionRun } from '../../../lib/workflows/retention.ts';
import { seedBundle } from '../../../local/twin/s3.ts';
import { daysAgo, REGION, retentionHarness, testPolicy, type RetentionHarness } from './helpers.ts';

/**
 * Fault trials: S3 answering 500 to deletes, DeregisterImage not deleting snapshots (internal-error, or no
 * DeleteSnapshotResults at all), and a run killed at a random call. Whatever happens, at most two runs with the
 * faults off leave nothing of the removed images behind, and nothing the plan kept is touched; every report of a
 * run that finished lists what is still open.
 */

const BUCKET = 'ami-bundles';
let h: RetentionHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

/** mulberry32: a small seeded generator, so a failing seed can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Seeded {
  snapshotsOf: Map<string, string[]>;
  bundleKeysOf: Map<string, string[]>;
}

async function seedAccount(harness: RetentionHarness, random: () => number): Promise<Seeded> {
  const { seed } = harness.twin;
  const s3 = s3Client(harness.clients, REGION);
  const bundleKeysOf = new Map<string, string[]>();
  for (const family of ['web', 'api', 'batch']) {
    const n = 3 + Math.floor(random() * 4);
    for (let i = 0; i < n; i++)
      seed.image(REGION, {
        name: `${family}-1.${i}`,
        creationDate: daysAgo(100 + (n - i) * 10),
        volumes: Array.from({ length: 1 + Math.floor(random() * 2) }, () => ({ sizeGiB: 8 })),
      });
  }
  seed.image(REGION, { name: 'keep-me-1.0', creationDate: daysAgo(400), tags: { 'ami-dr:retain': 'true' } });
  // One snapshot shared by an image the plan keeps (newest of its family) and one it removes.
  const shared = seed.snapshot(REGION, { sizeGiB: 4 });
  seed.image(REGION, { name: 'shared-1.0', creationDate: daysAgo(300), snapshotIds: [shared] });
  seed.image(REGION, { name: 'shared-1.1', creationDate: daysAgo(200), snapshotIds: [shared] });
  for (let i = 0; i < 3; i++) {
    const bundle = await seedBundle(s3, BUCKET, `store/v${i}`, 2 + Math.floor(random() * 3));
    const imageId = seed.image(REGION, {
      name: `store-1.${i}`,
      rootDeviceType: 'instance-store',
      imageLocation: bundle.imageLocation,
      creationDate: daysAgo(300 - i * 50),
    });
    bundleKeysOf.set(imageId, [...bundle.partKeys, bundle.manifestKey]);
  }
  const snapshotsOf = new Map<string, string[]>();
  for (const image of await harness.images())
    snapshotsOf.set(
      image.ImageId!,
      (image.BlockDeviceMappings ?? []).flatMap((m) => (m.Ebs?.SnapshotId ? [m.Ebs.SnapshotId] : [])),
    );
  return { snapshotsOf, bundleKeysOf };
}

/** After the `kill`-th call, every call of the region's EC2 and S3 clients fails, as if the process had died. */
function killSwitch(harness: RetentionHarness): { arm(afterCalls: number): void; disarm(): void; killed(): boolean } {
  let left = Number.POSITIVE_INFINITY;
  let dead = false;
  const middleware = (next: (args: unknown) => Promise<unknown>) => async (args: unknown) => {
    if (dead || left-- <= 0) {
      dead = true;
      throw Object.assign(new Error('the process was killed'), { name: 'Killed' });
    }
    return next(args);
  };
  for (const client of [ec2Client(harness.clients, REGION), s3Client(harness.clients, REGION)])
    (client.middlewareStack.add as (mw: unknown, options: unknown) => void)(middleware, {
      step: 'initialize',
      name: 'killSwitch',
    });
  return {
    arm: (afterCalls) => {
      left = afterCalls;
      dead = false;
    },
    disarm: () => {
      left = Number.POSITIVE_INFINITY;
      dead = false;
    },
    killed: () => dead,
  };
}

async function leftovers(harness: RetentionHarness, seeded: Seeded) {
  const registered = new Set((await harness.images()).map((i) => i.ImageId!));
  const inUse = new Set([...registered].flatMap((id) => seeded.snapshotsOf.get(id) ?? []));
  const snapshots = new Set(await harness.snapshotIds());
  const objects = new Set(await harness.objects(BUCKET));
  const gone = [...new Set([...seeded.snapshotsOf.keys(), ...seeded.bundleKeysOf.keys()])].filter(
    (id) => !registered.has(id),
  );
  return {
    registered,
    snapshots: gone.flatMap((id) =>
      (seeded.snapshotsOf.get(id) ?? []).filter((s) => snapshots.has(s) && !inUse.has(s)),
    ),
    bundleObjects: gone.flatMap((id) => (seeded.bundleKeysOf.get(id) ?? []).filter((k) => objects.has(k))),
    keptSnapshotsMissing: [...inUse].filter((s) => !snapshots.has(s)),
  };
}

async function journalObjects(harness: RetentionHarness): Promise<string[]> {
  const out = await s3Client(harness.clients, REGION).send(
    new ListObjectsV2Command({ Bucket: BUCKET, Prefix: JOURNAL_PREFIX }),
  );
  return (out.Contents ?? []).map((o) => o.Key!);
}

/** A finished run's report names every snapshot and bundle of a removed image that is still there. */
async function expectOpenListed(harness: RetentionHarness, seeded: Seeded, run: RetentionRun): Promise<void> {
  const left = await leftovers(harness, seeded);
  const open = run.report.journal?.open ?? [];
  expect(
    open
      .filter((e) => e.kind === 'snapshot')
      .map((e) => e.snapshotId)
      .sort(),
  ).toEqual(expect.arrayContaining(left.snapshots.sort()));
  const openBundles = new Set(open.flatMap((e) => (e.kind === 'bundle' ? [e.manifestKey] : [])));
  for (const [imageId, keys] of seeded.bundleKeysOf)
    if (!left.registered.has(imageId) && keys.some((k) => left.bundleObjects.includes(k)))
      expect(openBundles.has(keys[keys.length - 1]!)).toBe(true);
  expect(run.report.counts.journalOpen).toBe(open.length);
  if (open.length > 0) {
    expect(run.report.complete).toBe(false);
    expect(run.report.warnings.join('\n')).toMatch(/deletion journal still open/);
  }
}

describe('retention fault trials: nothing leaks, nothing kept is touched', () => {
  it.each(Array.from({ length: 10 }, (_, i) => 1000 + i * 7919))(
    'seed %i: faults, a killed run, then at most two clean runs',
    async (seed) => {
      const random = rng(seed);
      h = await retentionHarness({}, testPolicy({ bundleBuckets: [BUCKET] }), { maxAttempts: 2 });
      const seeded = await seedAccount(h, random);
      const { plan } = await h.run({ dryRun: true });
      const kept = plan.actions.filter((a) => a.action === 'keep').map((a) => a.imageId);
      const toRemove = plan.actions.filter((a) => a.action === 'deregister').map((a) => a.imageId);
      expect(toRemove.length).toBeGreaterThan(5);
      const kill = killSwitch(h);
      const faultsOn = () => {
        h!.twin.faults.s3Deletes(0.3 + random() * 0.5, random);
        h!.twin.faults.snapshotDeletions(random() < 0.5 ? 'internal-error' : 'omit-results', 0.5, random);
      };

      // A run with faults on, killed at a random call (it may die before, during or after the apply).
      faultsOn();
      kill.arm(1 + Math.floor(random() * 60));
      await h.run({ journalBackoffMs: 500 }).catch(() => undefined);
      kill.disarm();

      // A run with faults still on finishes: its report lists what it could not delete.
      const faulty = await h.run({ journalBackoffMs: 500 });
      await expectOpenListed(h, seeded, faulty);
      if (faulty.report.journal!.open.length > 0)
        expect(faulty.report.journal!.open.every((e) => e.reason.length > 0)).toBe(true);

      h.twin.faults.clear();
      let clean = await h.run();
      if ((await leftovers(h, seeded)).snapshots.length + (await leftovers(h, seeded)).bundleObjects.length > 0) {
        await expectOpenListed(h, seeded, clean);
        clean = await h.run();
      }

      const left = await leftovers(h, seeded);
      expect(left.snapshots).toEqual([]);
      expect(left.bundleObjects).toEqual([]);
      expect(left.keptSnapshotsMissing).toEqual([]);
      expect(await journalObjects(h)).toEqual([]);
      expect([...left.registered].sort()).toEqual(kept.sort());
      expect(clean.report.journal?.open).toEqual([]);
      expect(clean.report.complete).toBe(true);
    },
    60_000,
  );
});
