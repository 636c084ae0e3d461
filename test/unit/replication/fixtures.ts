import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageRecord } from '../../../lib/domain/image.ts';
import { parsePolicy, type Policy } from '../../../lib/domain/policy.ts';

export const ACCOUNT = '123456789012';
export const NOW = new Date('2026-03-02T12:00:00Z');
const EVENTS = join(import.meta.dirname, '..', '..', '..', 'events');

/** A sample from events/, as EventBridge would deliver it. */
export function sample(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(EVENTS, name), 'utf8')) as Record<string, unknown>;
}

export const policyDocument = {
  regions: {
    sources: ['us-east-1'],
    dr: [
      { region: 'us-west-2', kmsKeyId: 'alias/ami-dr' },
      { region: 'eu-west-1', kmsKeyId: 'alias/ami-dr' },
    ],
  },
  selector: { excludeTags: { 'ami-dr:skip': 'true' } },
  replication: { tagDenyList: ['CostCenter*'], extraTags: { 'dr-copy': 'true' } },
};

export function policy(overrides: Record<string, unknown> = {}): Readonly<Policy> {
  const { replication, ...rest } = overrides as { replication?: Record<string, unknown> };
  return parsePolicy({ ...policyDocument, ...rest, replication: { ...policyDocument.replication, ...replication } });
}

export function image(overrides: Partial<ImageRecord> = {}): ImageRecord {
  return {
    imageId: 'ami-0a1b2c3d4e5f60718',
    region: 'us-east-1',
    ownerId: ACCOUNT,
    name: 'web-2026.03.02',
    state: 'available',
    creationDate: '2026-03-02T10:15:00.000Z',
    deregistrationProtection: false,
    rootDeviceType: 'ebs',
    public: false,
    productCodes: [],
    snapshots: [{ snapshotId: 'snap-0123456789abcdef0', encrypted: false }],
    tags: { Team: 'web' },
    ...overrides,
  };
}
