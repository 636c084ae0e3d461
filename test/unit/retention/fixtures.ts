import type { ImageRecord } from '../../../lib/domain/image.ts';
import { parsePolicy, type Policy } from '../../../lib/domain/policy.ts';
import type { ImageReference, RetentionInventory } from '../../../lib/domain/retention-inventory.ts';

export const ACCOUNT = '111122223333';
export const REGION = 'us-east-1';
export const NOW = Date.UTC(2026, 5, 1, 12, 0, 0);
export const DAY = 86_400_000;

export const daysAgo = (days: number): string => new Date(NOW - days * DAY).toISOString();

let serial = 0;
export function image(overrides: Partial<ImageRecord> = {}): ImageRecord {
  serial++;
  const id = overrides.imageId ?? `ami-${serial.toString(16).padStart(17, '0')}`;
  return {
    imageId: id,
    region: REGION,
    ownerId: ACCOUNT,
    name: `img-${serial}`,
    state: 'available',
    creationDate: daysAgo(200),
    deregistrationProtection: false,
    rootDeviceType: 'ebs',
    public: false,
    productCodes: [],
    snapshots: [{ snapshotId: `snap-${id.slice(4)}`, volumeSizeGiB: 8 }],
    tags: {},
    ...overrides,
  };
}

export function inventory(
  images: ImageRecord[],
  extra: Partial<RetentionInventory> & { refs?: Record<string, ImageReference[]> } = {},
): RetentionInventory {
  const { refs, ...rest } = extra;
  return {
    region: REGION,
    accountId: ACCOUNT,
    images,
    snapshotSizes: new Map(),
    references: new Map(Object.entries(refs ?? {})),
    imageReferences: 'checked',
    sources: { checkedRegions: [REGION, 'us-west-2'], live: new Set() },
    warnings: [],
    ...rest,
  };
}

type Json = Record<string, unknown>;
/** A valid policy; `retention` merges into a default of deprecate 30 / deregister 90 / keepLatest 1 for both scopes. */
const BUNDLE_BUCKETS = ['bundles', 'bundles-us-east-1', 'bundles-us-west-2', 'bundles-eu-west-1'];

export function policy(retention: Json = {}, rest: Json = {}): Readonly<Policy> {
  const scope = { deprecateAfterDays: 30, deregisterAfterDays: 90, keepLatest: 1 };
  const { sources, replicas, ...others } = retention as { sources?: Json; replicas?: Json };
  return parsePolicy({
    regions: { sources: [REGION], dr: [{ region: 'us-west-2', kmsKeyId: 'alias/ami-dr' }] },
    ...rest,
    retention: {
      sources: { ...scope, ...sources },
      replicas: { ...scope, ...replicas },
      // The buckets the fixtures' instance-store bundles lie in (retention.bundleBuckets scopes what may be deleted).
      bundleBuckets: BUNDLE_BUCKETS,
      ...others,
    },
  });
}
