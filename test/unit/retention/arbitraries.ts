import fc from 'fast-check';
import type { ImageRecord, ImageState } from '../../../lib/domain/image.ts';
import type { Policy } from '../../../lib/domain/policy.ts';
import type { ImageReference, RetentionInventory } from '../../../lib/domain/retention-inventory.ts';
import { TAG } from '../../../lib/domain/tags.ts';
import { ACCOUNT, DAY, NOW, REGION, policy } from './fixtures.ts';

/** Random but plausible images: a few families, versions, ages around the thresholds, and every protection. */
export interface ImageSeed {
  family: number;
  version: number;
  ageDays: number;
  foreign: boolean;
  backup: boolean;
  retained: boolean;
  protected: boolean;
  referenced: boolean;
  replica: boolean;
  sourceLive: boolean;
  familyTag: boolean;
  state: ImageState;
  deprecated: boolean;
  instanceStore: boolean;
  sharedSnapshotWith: number;
}

const seedArb: fc.Arbitrary<ImageSeed> = fc.record({
  family: fc.nat(3),
  version: fc.nat(50),
  ageDays: fc.oneof(fc.nat(400), fc.constantFrom(29, 30, 89, 90)),
  foreign: fc.integer({ min: 0, max: 7 }).map((n) => n === 0),
  backup: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  retained: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  protected: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  referenced: fc.integer({ min: 0, max: 6 }).map((n) => n === 0),
  replica: fc.integer({ min: 0, max: 3 }).map((n) => n === 0),
  sourceLive: fc.boolean(),
  familyTag: fc.integer({ min: 0, max: 4 }).map((n) => n !== 0),
  state: fc.constantFrom<ImageState>(
    'available',
    'available',
    'available',
    'available',
    'disabled',
    'failed',
    'pending',
    'deregistered',
  ),
  deprecated: fc.boolean(),
  instanceStore: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  sharedSnapshotWith: fc.integer({ min: -1, max: 40 }),
});

export function buildInventory(seeds: ImageSeed[]): RetentionInventory {
  const refs = new Map<string, ImageReference[]>();
  const live = new Set<string>();
  const images: ImageRecord[] = seeds.map((s, i) => {
    const imageId = `ami-${i.toString(16).padStart(17, '0')}`;
    const tags: Record<string, string> = {};
    if (s.familyTag) tags.Family = `fam${s.family}`;
    if (s.retained) tags[TAG.retain] = 'true';
    if (s.backup) tags['aws:backup:source-resource'] = 'arn:aws:ec2:us-east-1:111122223333:instance/i-1';
    if (s.replica) {
      tags[TAG.role] = 'replica';
      tags[TAG.sourceImageId] = `ami-src${i}`;
      tags[TAG.sourceRegion] = 'us-west-2';
      if (s.sourceLive) live.add(`us-west-2/ami-src${i}`);
    }
    if (s.referenced) refs.set(imageId, [{ kind: 'launch-template', id: `lt-${i}:$Latest(1)` }]);
    const snapshotIndex = s.sharedSnapshotWith >= 0 && s.sharedSnapshotWith < i ? s.sharedSnapshotWith : i;
    return {
      imageId,
      region: REGION,
      ownerId: s.foreign ? '999988887777' : ACCOUNT,
      name: `fam${s.family}-1.${s.version}`,
      state: s.state,
      creationDate: new Date(NOW - s.ageDays * DAY - i * 1000).toISOString(),
      ...(s.deprecated ? { deprecationTime: new Date(NOW - DAY).toISOString() } : {}),
      deregistrationProtection: s.protected,
      rootDeviceType: s.instanceStore ? 'instance-store' : 'ebs',
      ...(s.instanceStore ? { imageLocation: `bundles/b${i}/image.manifest.xml` } : {}),
      public: false,
      productCodes: [],
      snapshots: s.instanceStore ? [] : [{ snapshotId: `snap-${snapshotIndex}`, volumeSizeGiB: 8 }],
      tags,
    };
  });
  return {
    region: REGION,
    accountId: ACCOUNT,
    images,
    snapshotSizes: new Map(),
    references: refs,
    imageReferences: 'checked',
    sources: { checkedRegions: ['us-west-2'], live },
    warnings: [],
  };
}

export const inventoryArb = fc.array(seedArb, { maxLength: 60 }).map(buildInventory);

export const policyArb: fc.Arbitrary<Readonly<Policy>> = fc
  .record({
    deprecate: fc.option(fc.constantFrom(0, 15, 30, 60), { nil: undefined }),
    extra: fc.option(fc.constantFrom(0, 30, 60, 120), { nil: undefined }),
    keepLatest: fc.nat(3),
    allowRemovingAll: fc.boolean(),
    familyTag: fc.boolean(),
    protectInUse: fc.boolean(),
    keepReplicasOfLiveSources: fc.boolean(),
  })
  .map((r) => {
    const deregister = r.extra === undefined ? undefined : (r.deprecate ?? 0) + r.extra;
    const keepLatest = deregister !== undefined && r.keepLatest === 0 && !r.allowRemovingAll ? 1 : r.keepLatest;
    const scope = {
      deprecateAfterDays: r.deprecate,
      deregisterAfterDays: deregister,
      keepLatest,
      family: r.familyTag ? { tag: 'Family' } : {},
    };
    return policy({
      sources: scope,
      replicas: scope,
      allowRemovingAll: r.allowRemovingAll,
      protectInUse: r.protectInUse,
      keepReplicasOfLiveSources: r.keepReplicasOfLiveSources,
    });
  });
