import type { Seeder } from '../twin/seed.ts';
import type { LaunchPermission } from '../../lib/domain/image.ts';
import { drRegion, type Policy } from '../../lib/domain/policy.ts';
import { protectionFor } from '../../lib/domain/dr-account.ts';
import { copyTags, launchPermissionsFor } from '../../lib/domain/replication.ts';

const DAY = 86_400_000;
export const PARTNER_ACCOUNT = '111122223333';

export interface SeededSource {
  imageId: string;
  region: string;
  name: string;
  /** How the account got here: replicated everywhere, an event lost on the way to one region, a copy edited by hand. */
  story: 'replicated' | 'event-lost' | 'tags-edited';
}

export interface SeededAccount {
  keys: Record<string, string>;
  sources: SeededSource[];
  instances: string[];
  launchTemplateId?: string;
}

interface ImageSpec {
  name: string;
  family: string;
  ageDays: number;
  story: SeededSource['story'];
  partner?: boolean;
}

/** A year of a small platform team's images: two families, a few versions each, most of them replicated by ami-dr. */
const HISTORY: ImageSpec[] = [
  { name: 'web-1.0.0', family: 'web', ageDays: 150, story: 'replicated' },
  { name: 'web-1.1.0', family: 'web', ageDays: 120, story: 'replicated' },
  { name: 'web-1.2.0', family: 'web', ageDays: 95, story: 'replicated' },
  { name: 'web-1.3.0', family: 'web', ageDays: 40, story: 'replicated', partner: true },
  { name: 'web-1.4.0', family: 'web', ageDays: 3, story: 'event-lost', partner: true },
  { name: 'batch-2025.09', family: 'batch', ageDays: 200, story: 'replicated' },
  { name: 'batch-2026.01', family: 'batch', ageDays: 60, story: 'tags-edited' },
];

/**
 * Seeds the twin with a realistic account for the policy: a customer-managed key under the policy's alias in each
 * DR region, image families in the source regions with their copies (made as replication makes them), one event
 * lost on the way (a missing copy), one copy whose tags were edited by hand, an instance and a launch template
 * that still use old images, and an image the selector excludes.
 */
/**
 * `accountSeed` seeds a DR account's resources (its key, and the copies it holds, sealed and protected as ami-dr
 * leaves them); without it, DR-account regions are seeded in ami-dr's own account.
 */
export function seedAccount(
  seed: Seeder,
  policy: Readonly<Policy>,
  now: number,
  accountSeed?: (account: string) => Seeder,
): SeededAccount {
  const keys: Record<string, string> = {};
  const seedIn = (region: string): Seeder => {
    const account = drRegion(policy, region)?.account;
    return account && accountSeed ? accountSeed(account) : seed;
  };
  for (const dr of policy.regions.dr) {
    if (dr.kmsKeyId.startsWith('alias/'))
      keys[dr.region] = seedIn(dr.region).key(dr.region, {
        alias: dr.kmsKeyId,
        description: 'ami-dr DR copies',
        // The partner launches the copies shared with it: the owner has let it use the key.
        allowAccounts: [PARTNER_ACCOUNT],
      }).arn;
  }
  const account: SeededAccount = { keys, sources: [], instances: [] };
  for (const region of policy.regions.sources) {
    const targets = policy.regions.dr.filter((d) => d.region !== region);
    // Someone edits a copy's tags by hand in the first DR region ami-dr can repair (a sealed copy it cannot).
    const editable = targets.findIndex((d) => !d.account);
    const byName = new Map<string, string>();
    for (const spec of HISTORY) {
      const creationDate = new Date(now - spec.ageDays * DAY).toISOString();
      const tags = { Name: spec.name, Family: spec.family, Team: 'platform', CostCenter: '4711' };
      const permissions: LaunchPermission[] = spec.partner ? [{ userId: PARTNER_ACCOUNT }] : [];
      const imageId = seed.image(region, {
        name: spec.name,
        description: `${spec.family} image`,
        tags,
        creationDate,
        sizeGiB: 8,
        launchPermissions: permissions,
      });
      byName.set(spec.name, imageId);
      account.sources.push({ imageId, region, name: spec.name, story: spec.story });
      targets.forEach((target, i) => {
        if (spec.story === 'event-lost' && i === targets.length - 1) return;
        const replicatedAt = new Date(Date.parse(creationDate) + 18 * 60_000).toISOString();
        const copyTagsNow = copyTags({ imageId, region, creationDate, tags }, policy, replicatedAt).tags;
        if (spec.story === 'tags-edited' && i === editable) copyTagsNow.Team = 'someone-else';
        seedIn(target.region).image(target.region, {
          name: spec.name,
          description: `${spec.family} image`,
          tags: copyTagsNow,
          creationDate: new Date(Date.parse(creationDate) + 2 * 60_000).toISOString(),
          // As StartCopy's TagSpecifications tag them: the copy's snapshots carry its tags from creation.
          volumes: [{ sizeGiB: 8, encrypted: true, kmsKeyId: target.kmsKeyId, tags: copyTagsNow }],
          launchPermissions: launchPermissionsFor(permissions, policy, true),
          sourceImageId: imageId,
          sourceImageRegion: region,
          ...(protectionFor(policy, target.region) ? { deregistrationProtection: true } : {}),
        });
      });
    }
    // Old images still in use: retention must keep them.
    const oldest = byName.get('web-1.0.0');
    const batch = byName.get('batch-2025.09');
    const latest = byName.get('web-1.4.0');
    if (batch) account.instances.push(seed.instance(region, { imageId: batch, tags: { Name: 'nightly-batch' } }));
    if (latest)
      account.instances.push(
        seed.instance(region, { imageId: latest, tags: { Name: 'web-1' } }),
        seed.instance(region, { imageId: latest, tags: { Name: 'web-2' } }),
      );
    if (oldest && latest) {
      account.launchTemplateId = seed.launchTemplate(region, {
        name: 'web',
        versions: [{ imageId: oldest, description: 'first release' }, { imageId: latest }],
        defaultVersion: 1,
      });
    }
    // Out of scope: the selector's exclude tag (example policy), or just never matched.
    seed.image(region, {
      name: 'scratch-experiment',
      tags: { Name: 'scratch', 'ami-dr:skip': 'true' },
      creationDate: new Date(now - 300 * DAY).toISOString(),
    });
  }
  return account;
}
