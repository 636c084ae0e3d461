import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createClients } from '../../../lib/aws/clients.ts';
import type { ImageRecord } from '../../../lib/domain/image.ts';
import { familyName } from '../../../lib/domain/retention-planner.ts';
import { parsePolicy, policyVersion, type Policy } from '../../../lib/domain/policy.ts';
import type { RetentionInventory } from '../../../lib/domain/retention-inventory.ts';
import { toSavedPlan, type SavedPlan } from '../../../lib/domain/saved-plan.ts';
import { TAG } from '../../../lib/domain/tags.ts';
import { runRetentionEverywhere, type EverywhereOptions } from '../../../lib/workflows/retention.ts';
import { buildInventory, policyArb, type ImageSeed } from './arbitraries.ts';
import { FakeAccount } from './fake-account.ts';
import { ACCOUNT, NOW } from './fixtures.ts';

// Retention over three regions of one account: sources in us-east-1, their copies in us-west-2 and eu-west-1.

const SOURCE = 'us-east-1';
const DR = ['us-west-2', 'eu-west-1'];

/** buildInventory's images, moved to `region` with ids of their own; copies point at images of us-east-1. */
function regionInventory(
  region: string,
  k: number,
  seeds: ImageSeed[],
  sourceIds: readonly string[],
): RetentionInventory {
  const base = buildInventory(region === SOURCE ? seeds.map((s) => ({ ...s, replica: false })) : seeds);
  const id = (old: string): string => `ami-${k}${old.slice(5)}`;
  const images: ImageRecord[] = base.images.map((i, n) => {
    const tags = { ...i.tags };
    if (tags[TAG.role] === 'replica') {
      // A copy of a live source, or of one deregistered long ago (an id no image has).
      const live = seeds[n]?.sourceLive && sourceIds.length > 0;
      tags[TAG.sourceImageId] = live
        ? (sourceIds[n % sourceIds.length] as string)
        : `ami-9${n.toString(16).padStart(16, '0')}`;
      tags[TAG.sourceRegion] = SOURCE;
    }
    return {
      ...i,
      imageId: id(i.imageId),
      region,
      tags,
      snapshots: i.snapshots.map((s) => ({ ...s, snapshotId: `${s.snapshotId}-${k}` })),
      ...(i.imageLocation ? { imageLocation: i.imageLocation.replace('bundles/', `bundles-${region}/`) } : {}),
    };
  });
  return {
    ...base,
    region,
    images,
    references: new Map([...base.references].map(([key, refs]) => [id(key), refs])),
  };
}

const seedsArb = fc.array(
  fc.record({
    family: fc.nat(2),
    version: fc.nat(50),
    ageDays: fc.oneof(fc.nat(300), fc.constantFrom(29, 30, 89, 90)),
    foreign: fc.constant(false),
    backup: fc.integer({ min: 0, max: 14 }).map((n) => n === 0),
    retained: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
    protected: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
    referenced: fc.integer({ min: 0, max: 6 }).map((n) => n === 0),
    replica: fc.integer({ min: 0, max: 5 }).map((n) => n !== 0),
    sourceLive: fc.boolean(),
    familyTag: fc.integer({ min: 0, max: 4 }).map((n) => n !== 0),
    state: fc.constantFrom<ImageSeed['state']>('available', 'available', 'available', 'disabled', 'failed', 'pending'),
    deprecated: fc.boolean(),
    instanceStore: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
    sharedSnapshotWith: fc.integer({ min: -1, max: 12 }),
  }),
  { maxLength: 12 },
);

const accountArb: fc.Arbitrary<RetentionInventory[]> = fc.tuple(seedsArb, seedsArb, seedsArb).map(([s, w, e]) => {
  const source = regionInventory(SOURCE, 1, s, []);
  const sourceIds = source.images.map((i) => i.imageId);
  return [source, regionInventory(DR[0] as string, 2, w, sourceIds), regionInventory(DR[1] as string, 3, e, sourceIds)];
});

const threeRegions = policyArb.map((p) =>
  parsePolicy({
    ...p,
    regions: { sources: [SOURCE], dr: DR.map((region) => ({ region, kmsKeyId: 'alias/ami-dr' })) },
  }),
);

const everywhere = (policy: Readonly<Policy>, extra: Partial<EverywhereOptions> = {}) => {
  let t = NOW;
  return runRetentionEverywhere({
    clients: createClients({ maxAttempts: 1 }),
    policy,
    accountId: ACCOUNT,
    now: NOW,
    clock: () => t,
    sleep: async (ms) => void (t += ms),
    ...extra,
  });
};

/** Runs `fn` on a fresh in-memory account holding `inventories`; one account at a time (the mocks are global). */
async function onAccount<T>(inventories: RetentionInventory[], fn: (account: FakeAccount) => Promise<T>): Promise<T> {
  const account = new FakeAccount(inventories);
  try {
    return await fn(account);
  } finally {
    account.restore();
  }
}

const key = (region: string, id: string): string => `${region}/${id}`;
const sorted = (xs: Iterable<string>): string[] => [...new Set(xs)].sort();

/** What the plan lists, by kind, as `region/id`: images, the snapshots and bundle objects going with them. */
function listed(runs: Awaited<ReturnType<typeof everywhere>>['runs']) {
  const out = {
    deregister: [] as string[],
    deprecate: [] as string[],
    snapshots: [] as string[],
    objects: [] as string[],
  };
  for (const { plan } of runs) {
    for (const a of plan.actions) {
      if (a.action === 'deprecate') out.deprecate.push(key(plan.region, a.imageId));
      if (a.action !== 'deregister') continue;
      out.deregister.push(key(plan.region, a.imageId));
      for (const s of a.snapshots) if (!s.sharedWithKeptImage) out.snapshots.push(key(plan.region, s.snapshotId));
      if (a.rootDeviceType === 'instance-store' && !a.keepBundle && a.imageLocation) {
        const prefix = a.imageLocation.split('/').slice(0, -1).join('/');
        for (const o of [a.imageLocation, `${prefix}/image.part.00`, `${prefix}/image.part.01`])
          out.objects.push(key(plan.region, o));
      }
    }
  }
  return {
    deregister: sorted(out.deregister),
    deprecate: sorted(out.deprecate),
    snapshots: sorted(out.snapshots),
    objects: sorted(out.objects),
  };
}

function done(account: FakeAccount) {
  const of = (action: string) =>
    sorted(account.mutations.filter((m) => m.action === action).map((m) => key(m.region, m.id)));
  return {
    deregister: of('DeregisterImage'),
    deprecate: of('EnableImageDeprecation'),
    snapshots: of('DeleteSnapshot'),
    objects: of('DeleteObject'),
  };
}

type Change = { kind: 'in-use' | 'retained' | 'protected' | 'newer-gone'; pick: number };
const changesArb = fc.array(
  fc.record({
    kind: fc.constantFrom<Change['kind']>('in-use', 'retained', 'protected', 'newer-gone'),
    pick: fc.nat(1000),
  }),
  { maxLength: 4 },
);

/**
 * The account some time after the plan: each change hits an image the saved plan acts on (so it matters). Returns
 * the changed inventories and the `region/id` of the images made unsafe to touch (in use, retained, protected).
 */
function change(inventories: RetentionInventory[], saved: SavedPlan, changes: Change[], policy: Readonly<Policy>) {
  const targets = saved.plans.flatMap((p) =>
    p.actions.filter((a) => a.action !== 'keep').map((a) => key(p.region, a.imageId)),
  );
  const next = inventories.map((i) => ({ ...i, images: [...i.images], references: new Map(i.references) }));
  const unsafe = new Set<string>();
  for (const c of changes) {
    const target = targets[c.pick % Math.max(1, targets.length)];
    if (!target) break;
    const [region, id] = target.split('/') as [string, string];
    const inv = next.find((i) => i.region === region) as (typeof next)[number];
    const at = inv.images.findIndex((i) => i.imageId === id);
    const image = inv.images[at];
    if (!image) continue;
    if (c.kind === 'in-use') {
      inv.references.set(id, [{ kind: 'launch-template', id: `lt-new-${c.pick}:$Latest(1)` }]);
      if (policy.retention.protectInUse) unsafe.add(target);
    } else if (c.kind === 'retained') {
      inv.images[at] = { ...image, tags: { ...image.tags, [TAG.retain]: 'true' } };
      unsafe.add(target);
    } else if (c.kind === 'protected') {
      inv.images[at] = { ...image, deregistrationProtection: true };
      unsafe.add(target);
    } else {
      // The newest other image of its family is deregistered by someone: this one may now be the one to keep.
      const family = familyName(image.name);
      const newer = inv.images
        .filter((i) => i.imageId !== id && familyName(i.name) === family && i.creationDate > image.creationDate)
        .sort((a, b) => b.creationDate.localeCompare(a.creationDate))[0];
      if (newer) inv.images = inv.images.filter((i) => i !== newer);
    }
  }
  return { inventories: next, unsafe };
}

/** 200 runs of a three-region account each: about 20 s on an idle machine, so more room than the default 30 s. */
const PROPERTY_TIMEOUT_MS = 120_000;

describe('retention everywhere (three regions, copies across them)', () => {
  it(
    'apply removes exactly the images, snapshots and bundle objects the plan lists, and deprecates what it lists',
    async () => {
      await fc.assert(
        fc.asyncProperty(accountArb, threeRegions, async (inventories, policy) => {
          const plan = await onAccount(inventories, async (account) => {
            const r = await everywhere(policy, { dryRun: true });
            expect(account.mutations).toEqual([]);
            expect(r.failures).toEqual([]);
            return listed(r.runs);
          });
          await onAccount(inventories, async (account) => {
            const r = await everywhere(policy, { dryRun: false });
            expect(r.failures).toEqual([]);
            expect(done(account)).toEqual(plan);
            // Each region's report lists as planned what the dry-run listed.
            expect(listed(r.runs)).toEqual(plan);
          });
        }),
        { numRuns: 200 },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    'apply --plan after changes to the account removes a subset of the plan, and nothing that became unsafe',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          accountArb,
          threeRegions,
          changesArb,
          fc.constantFrom(0, 1, 45, 120),
          async (inventories, policy, changes, daysLater) => {
            const saved = await onAccount(inventories, async () => {
              const r = await everywhere(policy, { dryRun: true });
              return toSavedPlan({
                policy: { name: policy.name, version: policyVersion(policy) },
                accountId: ACCOUNT,
                now: new Date(NOW).toISOString(),
                regions: r.runs.map((run) => ({ plan: run.plan, fingerprint: run.fingerprint })),
              });
            });
            const later = change(inventories, saved, changes, policy);
            // Time passes too: more images come due, which the saved plan must not pick up.
            const now = NOW + daysLater * 86_400_000;
            // What a plan made now would do: the bound for what is safe.
            const fresh = await onAccount(later.inventories, async () =>
              listed((await everywhere(policy, { dryRun: true, now })).runs),
            );
            await onAccount(later.inventories, async (account) => {
              const r = await everywhere(policy, { saved, now });
              expect(r.failures).toEqual([]);
              const did = done(account);
              const savedOf = (kind: string) =>
                saved.plans.flatMap((p) =>
                  p.actions.filter((a) => a.action === kind).map((a) => key(p.region, a.imageId)),
                );
              expect(did.deregister.filter((x) => !savedOf('deregister').includes(x))).toEqual([]);
              expect(did.deprecate.filter((x) => !savedOf('deprecate').includes(x))).toEqual([]);
              expect(did.deregister.filter((x) => !fresh.deregister.includes(x))).toEqual([]);
              for (const x of later.unsafe) {
                expect(did.deregister).not.toContain(x);
                expect(did.deprecate).not.toContain(x);
              }
              // Every saved action is either done or reported skipped with a reason.
              const skipped = r.runs.flatMap((run) => (run.skipped ?? []).map((s) => key(run.plan.region, s.imageId)));
              expect(sorted([...did.deregister, ...did.deprecate, ...skipped])).toEqual(
                sorted([...savedOf('deregister'), ...savedOf('deprecate')]),
              );
              for (const x of later.unsafe) if (savedOf('deregister').includes(x)) expect(skipped).toContain(x);
            });
          },
        ),
        { numRuns: 200 },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );
});
