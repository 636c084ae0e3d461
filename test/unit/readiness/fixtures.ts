import type { ImageRecord, LaunchPermission } from '../../../lib/domain/image.ts';
import { parsePolicy, type Policy } from '../../../lib/domain/policy.ts';
import { imageKey, type ReadinessInput } from '../../../lib/domain/readiness.ts';
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
