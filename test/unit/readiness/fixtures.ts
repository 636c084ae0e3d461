import type { ImageRecord, LaunchPermission } from '../../../lib/domain/image.ts';
import { parsePolicy, type Policy } from '../../../lib/domain/policy.ts';
import {
  imageKey,
  type ReadinessCell,
  type ReadinessInput,
  type ReadinessReport,
  type ReadinessRow,
} from '../../../lib/domain/readiness.ts';
import { TAG } from '../../../lib/domain/tags.ts';

export const NOW = Date.parse('2026-03-01T12:00:00Z');
export const KEY_ARN = {
  'us-west-2': 'arn:aws:kms:us-west-2:000000000000:key/11111111-1111-1111-1111-111111111111',
  'eu-west-1': 'arn:aws:kms:eu-west-1:000000000000:key/22222222-2222-2222-2222-222222222222',
} as const;

export function policy(overrides: Record<string, unknown> = {}): Policy {
  return parsePolicy({
    regions: {
      sources: ['us-east-1'],
      dr: [
        { region: 'us-west-2', kmsKeyId: 'alias/ami-dr' },
        { region: 'eu-west-1', kmsKeyId: 'alias/ami-dr' },
      ],
    },
    selector: { excludeTags: { 'ami-dr:skip': 'true' } },
    replication: { tagDenyList: ['CostCenter*'], extraTags: { 'dr-copy': 'true' } },
    ...overrides,
  });
}

export function source(id: string, extra: Partial<ImageRecord> = {}): ImageRecord {
  return {
    imageId: id,
    region: 'us-east-1',
    ownerId: '000000000000',
    name: `app-${id}`,
    state: 'available',
    creationDate: '2026-03-01T10:00:00.000Z',
    deregistrationProtection: false,
    rootDeviceType: 'ebs',
    public: false,
    productCodes: [],
    snapshots: [{ snapshotId: `snap-${id}`, encrypted: false }],
    tags: { Name: 'app', Team: 'core', CostCenter: '42' },
    ...extra,
  };
}

/** A copy exactly as replication leaves it. */
export function copy(src: ImageRecord, region: keyof typeof KEY_ARN, extra: Partial<ImageRecord> = {}): ImageRecord {
  return {
    imageId: `${src.imageId}-${region}`,
    region,
    ownerId: '000000000000',
    name: src.name,
    state: 'available',
    creationDate: '2026-03-01T10:05:00.000Z',
    deprecationTime: src.deprecationTime,
    deregistrationProtection: false,
    rootDeviceType: 'ebs',
    public: false,
    productCodes: [],
    snapshots: [{ snapshotId: `snap-${src.imageId}-${region}`, encrypted: true, kmsKeyId: KEY_ARN[region] }],
    tags: {
      Name: 'app',
      Team: 'core',
      'dr-copy': 'true',
      [TAG.role]: 'replica',
      [TAG.sourceImageId]: src.imageId,
      [TAG.sourceRegion]: src.region,
      [TAG.sourceCreatedAt]: src.creationDate,
      [TAG.replicatedAt]: '2026-03-01T10:20:00.000Z',
      [TAG.policy]: 'default',
    },
    ...extra,
  };
}

export function input(parts: {
  policy?: Policy;
  sources: ImageRecord[];
  copies: ImageRecord[];
  permissions?: [ImageRecord, LaunchPermission[]][];
}): ReadinessInput {
  const launchPermissions = new Map<string, LaunchPermission[]>();
  // Every image's permissions are known (empty) unless the test says otherwise.
  for (const image of [...parts.sources, ...parts.copies])
    launchPermissions.set(imageKey(image.region, image.imageId), []);
  for (const [image, perms] of parts.permissions ?? [])
    launchPermissions.set(imageKey(image.region, image.imageId), perms);
  return {
    policy: parts.policy ?? policy(),
    now: NOW,
    sources: parts.sources,
    copies: parts.copies,
    launchPermissions,
    keyIds: {
      'us-west-2': [KEY_ARN['us-west-2'], 'alias/ami-dr'],
      'eu-west-1': [KEY_ARN['eu-west-1'], 'alias/ami-dr'],
    },
  };
}

const GAPS_PER_100 = [
  [7, 0, 'failed'],
  [32, 1, 'missing'],
  [57, 2, 'drifted'],
  [82, 0, 'in-progress'],
] as const;

/**
 * A report as computed for `images` source images × 3 DR regions, built directly (rendering tests stay fast):
 * every copy ready except, per 100 images, one failed, one missing, one drifted and one in progress; with
 * `newRegion`, the third region is one just added to the policy, so every image is missing there.
 */
export function largeReport(images: number, options: { newRegion?: boolean } = {}): ReadinessReport {
  const drRegions = ['us-west-2', 'eu-west-1', 'ap-southeast-2'];
  const rows: ReadinessRow[] = [];
  for (let i = 0; i < images; i++) {
    const sourceImageId = `ami-${i.toString(16).padStart(17, '0')}`;
    const ageSeconds = (i % 400) * 86_400 + 3_600;
    const cells: ReadinessCell[] = drRegions.map((region, j) => {
      const copyImageId = `ami-${(i * 4 + j + 1).toString(16).padStart(17, 'c')}`;
      const gap = GAPS_PER_100.find(([at, col]) => i % 100 === at && j === col)?.[2];
      if ((options.newRegion && j === 2) || gap === 'missing')
        return { region, status: 'missing', reason: 'no copy in this region', drift: [], lagSeconds: ageSeconds };
      if (gap === 'failed')
        return {
          region,
          status: 'failed',
          copyImageId,
          copyState: 'failed',
          reason: `copy failed: Client.InternalError: snapshot snap-${i.toString(16).padStart(17, '0')} could not be copied`,
          drift: [],
          lagSeconds: ageSeconds,
        };
      if (gap === 'in-progress')
        return {
          region,
          status: 'in-progress',
          copyImageId,
          copyState: 'pending',
          reason: 'copy is pending',
          drift: [],
          lagSeconds: ageSeconds,
        };
      if (gap === 'drifted')
        return {
          region,
          status: 'drifted',
          copyImageId,
          copyState: 'available',
          reason: 'tags changed Team',
          drift: [{ kind: 'tags', detail: 'tags changed Team', set: { Team: 'core' } }],
          lagSeconds: 900,
        };
      return {
        region,
        status: 'ready',
        copyImageId,
        copyState: 'available',
        drift: [],
        lagSeconds: 900 + (i % 60) * 60,
      };
    });
    rows.push({
      sourceImageId,
      sourceRegion: 'us-east-1',
      name: `app-${i % 50}-1.${i % 7}.${i}`,
      sourceState: 'available',
      createdAt: new Date(NOW - ageSeconds * 1000).toISOString(),
      ageSeconds,
      protected: cells.every((c) => c.status === 'ready'),
      cells,
    });
  }
  const counts = { ready: 0, 'in-progress': 0, missing: 0, failed: 0, drifted: 0 };
  for (const row of rows) for (const cell of row.cells) counts[cell.status]++;
  const notReady = rows.filter((r) => !r.protected);
  return {
    generatedAt: new Date(NOW).toISOString(),
    policy: { name: 'default', version: '474fa077' },
    sourceRegions: ['us-east-1'],
    drRegions,
    rows,
    summary: {
      images: rows.length,
      cells: rows.length * drRegions.length,
      counts,
      readyRatio: counts.ready / (rows.length * drRegions.length),
      imagesNotReady: notReady.length,
      oldestUnprotectedAgeSeconds: Math.max(0, ...notReady.map((r) => r.ageSeconds)),
      maxLagSeconds: 400 * 86_400,
      medianLagSeconds: 900,
    },
  };
}
