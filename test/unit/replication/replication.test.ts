import { describe, expect, it } from 'vitest';
import { parseImageEvent, type ImageEvent } from '../../../lib/domain/image-event.ts';
import {
  copyDeadline,
  copyName,
  copyTags,
  deprecationFor,
  fallbackWaitSeconds,
  launchPermissionsFor,
  MAX_TAGS,
  nextWaitSeconds,
  PublicEncryptedImageError,
  screenEvent,
  screenImage,
  waitSeconds,
} from '../../../lib/domain/replication.ts';
import { matchSelector } from '../../../lib/domain/selector.ts';
import { ACCOUNT, NOW, image, policy, sample } from './fixtures.ts';
import { redriveBackoffMs } from '../../../lib/workflows/replication.ts';

const ctx = {
  policy: policy(),
  accountId: ACCOUNT,
  roleArnPrefix: `arn:aws:sts::${ACCOUNT}:assumed-role/ami-dr-dev-us-east-1-`,
};
const event = (file: string): ImageEvent => parseImageEvent(sample(file));

describe('screenEvent', () => {
  it.each([
    'cloudtrail-create-image.json',
    'cloudtrail-copy-image.json',
    'cloudtrail-register-image.json',
    'ami-state-change-available.json',
  ])('acts on %s', (file) => {
    expect(screenEvent(event(file), ctx)).toEqual({ act: true });
  });

  it.each([
    ['cloudtrail-create-image-failed.json', 'call-failed', /InvalidAMIName\.Duplicate/],
    ['cloudtrail-create-image-other-account.json', 'another-account', /210987654321/],
    ['cloudtrail-copy-image-own-role.json', 'own-role', /ami-dr-dev-us-east-1-startCopy/],
  ])('drops %s: %s', (file, reason, detail) => {
    const verdict = screenEvent(event(file), ctx);
    expect(verdict).toMatchObject({ act: false, reason });
    expect(verdict.act === false && verdict.detail).toMatch(detail);
  });

  it('recognises its own role by an IAM role prefix too', () => {
    const iamPrefix = { ...ctx, roleArnPrefix: `arn:aws:iam::${ACCOUNT}:role/ami-dr-dev-us-east-1-` };
    expect(screenEvent(event('cloudtrail-copy-image-own-role.json'), iamPrefix)).toMatchObject({ reason: 'own-role' });
    expect(screenEvent(event('cloudtrail-create-image.json'), iamPrefix)).toEqual({ act: true });
  });

  it('drops events of regions that are not sources, and state changes other than available', () => {
    const west = { ...event('cloudtrail-create-image.json'), region: 'us-west-2' };
    expect(screenEvent(west, ctx)).toMatchObject({ reason: 'not-a-source-region' });
    const failed = { ...event('ami-state-change-available.json'), state: 'failed' };
    expect(screenEvent(failed, ctx)).toMatchObject({ reason: 'not-available' });
  });
});

describe('screenImage', () => {
  it('acts on an owned, selected image', () => {
    expect(screenImage(image(), ctx)).toEqual({ act: true });
  });

  it.each([
    ['not found', undefined, 'image-not-found'],
    ['a replica', image({ tags: { 'ami-dr:role': 'replica' } }), 'replica'],
    [
      'a Marketplace image shared from another account',
      image({ ownerId: '679593333241', productCodes: ['prod-abc'] }),
      'marketplace',
    ],
    ['an image of another account', image({ ownerId: '210987654321' }), 'not-owned'],
    ['excluded by the selector', image({ tags: { 'ami-dr:skip': 'true' } }), 'selector'],
    ['failed', image({ state: 'failed' }), 'not-copyable'],
  ])('drops %s', (_, record, reason) => {
    expect(screenImage(record, ctx)).toMatchObject({ act: false, reason });
  });

  it('copies an owned image with product codes (the account may copy its own)', () => {
    expect(screenImage(image({ productCodes: ['prod-abc'] }), ctx)).toEqual({ act: true });
  });
});

describe('matchSelector', () => {
  const selector = (s: Record<string, unknown>) => policy({ selector: s }).selector;
  it('requires every include tag, "*" meaning any value', () => {
    const s = selector({ includeTags: { Team: '*', Env: 'prod' } });
    expect(matchSelector(s, { name: 'x', tags: { Team: 'a', Env: 'prod' } }).match).toBe(true);
    expect(matchSelector(s, { name: 'x', tags: { Team: 'a', Env: 'dev' } })).toEqual({
      match: false,
      detail: 'missing tag Env=prod',
    });
  });
  it('excludes on any exclude tag', () => {
    const s = selector({ excludeTags: { Temp: '*' } });
    expect(matchSelector(s, { name: 'x', tags: { Temp: 'yes' } }).match).toBe(false);
    expect(matchSelector(s, { name: 'x', tags: {} }).match).toBe(true);
  });
  it('needs a name pattern match when patterns are given, and no excluded pattern', () => {
    const s = selector({ namePatterns: ['web-*', 'api-?'], excludeNamePatterns: ['*-test'] });
    expect(matchSelector(s, { name: 'web-2026', tags: {} }).match).toBe(true);
    expect(matchSelector(s, { name: 'api-1', tags: {} }).match).toBe(true);
    expect(matchSelector(s, { name: 'db-1', tags: {} }).match).toBe(false);
    expect(matchSelector(s, { name: 'web-test', tags: {} })).toEqual({
      match: false,
      detail: 'name web-test matches excluded pattern *-test',
    });
  });
  it('applies only the exclusions when asked (copies, whose includes were checked on their source)', () => {
    const s = selector({ includeTags: { Team: 'web' }, namePatterns: ['web-*'], excludeNamePatterns: ['*-test'] });
    const copy = { name: 'web-1 (ami-1 from us-east-1)', tags: {} };
    expect(matchSelector(s, copy).match).toBe(false);
    expect(matchSelector(s, copy, { exclusionsOnly: true }).match).toBe(true);
    expect(matchSelector(s, { name: 'web-test', tags: {} }, { exclusionsOnly: true }).match).toBe(false);
  });
});

describe('copyTags', () => {
  const source = image({
    tags: {
      Team: 'web',
      CostCenter: 'cc-1',
      CostCenterOwner: 'x',
      'aws:cloudformation:stack-name': 's',
      'ami-dr:retain': 'true',
      'dr-copy': 'no',
    },
  });
  it('copies user tags minus aws:, ami-dr: and the deny list, adds extras and provenance', () => {
    const { tags, dropped } = copyTags(source, policy(), '2026-03-02T11:00:00.000Z');
    expect(tags).toEqual({
      Team: 'web',
      'dr-copy': 'true',
      'ami-dr:role': 'replica',
      'ami-dr:source-image-id': source.imageId,
      'ami-dr:source-region': 'us-east-1',
      'ami-dr:source-created-at': source.creationDate,
      'ami-dr:policy': expect.stringMatching(/^default@[0-9a-f]{8}$/) as unknown as string,
      'ami-dr:replicated-at': '2026-03-02T11:00:00.000Z',
    });
    expect(dropped).toEqual([]);
  });
  it('copies no user tags when copyTags is off, but keeps provenance', () => {
    const { tags } = copyTags(source, policy({ replication: { copyTags: false } }));
    expect(Object.keys(tags).sort()).toEqual([
      'ami-dr:policy',
      'ami-dr:role',
      'ami-dr:source-created-at',
      'ami-dr:source-image-id',
      'ami-dr:source-region',
      'dr-copy',
    ]);
  });
  it('stays within 50 tags, keeping provenance and extras and reporting what it left off', () => {
    const many = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`k${String(i).padStart(2, '0')}`, 'v']));
    const { tags, dropped } = copyTags(image({ tags: many }), policy());
    expect(Object.keys(tags)).toHaveLength(MAX_TAGS);
    expect(tags['ami-dr:role']).toBe('replica');
    expect(tags['dr-copy']).toBe('true');
    expect(dropped).toHaveLength(60 - (MAX_TAGS - 6));
  });
});

describe('launchPermissionsFor', () => {
  const ORG = 'arn:aws:organizations::111122223333:organization/o-abcdefghij';
  const OU = 'arn:aws:organizations::111122223333:ou/o-abcdefghij/ou-ab12-cdefghij';
  it('carries accounts, organizations and OUs, adds the policy extras, without duplicates', () => {
    const p = policy({
      replication: {
        addLaunchPermissions: { userIds: ['333333333333', '111111111111'], organizationalUnitArns: [OU] },
      },
    });
    const result = launchPermissionsFor([{ userId: '111111111111' }, { organizationArn: ORG }], p, true);
    expect(result).toEqual([
      { userId: '111111111111' },
      { organizationArn: ORG },
      { userId: '333333333333' },
      { organizationalUnitArn: OU },
    ]);
  });
  it('leaves the source permissions off when copyLaunchPermissions is off', () => {
    expect(
      launchPermissionsFor(
        [{ userId: '111111111111' }],
        policy({ replication: { copyLaunchPermissions: false } }),
        true,
      ),
    ).toEqual([]);
  });
  it('never makes an encrypted copy public: a named error', () => {
    expect(() => launchPermissionsFor([{ group: 'all' }], policy(), true)).toThrow(PublicEncryptedImageError);
    expect(launchPermissionsFor([{ group: 'all' }], policy(), false)).toEqual([{ group: 'all' }]);
  });
});

describe('deprecationFor', () => {
  it('carries a future deprecation time, not a past one, and none when the policy says so', () => {
    expect(deprecationFor('2026-07-01T00:00:00Z', policy(), NOW)).toBe('2026-07-01T00:00:00.000Z');
    expect(deprecationFor('2026-01-01T00:00:00Z', policy(), NOW)).toBeUndefined();
    expect(deprecationFor(undefined, policy(), NOW)).toBeUndefined();
    expect(
      deprecationFor('2026-07-01T00:00:00Z', policy({ replication: { copyDeprecation: false } }), NOW),
    ).toBeUndefined();
  });
});

describe('waiting', () => {
  it('doubles from 30 s to a 4 h cap', () => {
    expect(Array.from({ length: 12 }, (_, i) => waitSeconds(i))).toEqual([
      30, 60, 120, 240, 480, 960, 1920, 3840, 7680, 14400, 14400, 14400,
    ]);
  });
  it('never waits past the deadline by more than a second', () => {
    const deadline = copyDeadline(NOW, policy());
    expect(deadline.toISOString()).toBe('2026-03-03T12:00:00.000Z');
    expect(nextWaitSeconds(20, new Date(deadline.getTime() - 100_000), deadline)).toBe(100);
    expect(nextWaitSeconds(20, new Date(deadline.getTime() + 5_000), deadline)).toBe(1);
  });
  it('checks a 12 h copy at most 11 times', () => {
    let elapsed = 0;
    let checks = 0;
    while (elapsed < 12 * 3600) elapsed += waitSeconds(checks++);
    expect(checks).toBe(11);
  });
});

describe('waiting for a copy event, with fallback checks', () => {
  const deadline = new Date(NOW.getTime() + 48 * 3600_000);
  it('times out after 2 h, then 4 h, then every 8 h', () => {
    expect(Array.from({ length: 5 }, (_, i) => fallbackWaitSeconds(i, NOW, deadline) / 3600)).toEqual([2, 4, 8, 8, 8]);
  });
  it('never waits past the deadline by more than a second', () => {
    expect(fallbackWaitSeconds(3, new Date(deadline.getTime() - 100_000), deadline)).toBe(100);
    expect(fallbackWaitSeconds(0, new Date(deadline.getTime() + 5_000), deadline)).toBe(1);
  });
  it('checks a 12 h copy at most twice before it ends, and sees it at most 2 h late with every event lost', () => {
    let elapsed = 0;
    let checks = 0;
    while (elapsed < 12 * 3600) elapsed += fallbackWaitSeconds(checks++, NOW, deadline);
    expect(checks - 1).toBe(2);
    expect(elapsed - 12 * 3600).toBe(2 * 3600);
  });
});

describe('copyName', () => {
  it('keeps a valid name, replaces characters EC2 refuses, and can say where the copy came from', () => {
    expect(copyName(image({ name: 'web-2026.03.02' }))).toBe('web-2026.03.02');
    expect(copyName(image({ name: 'web:2026,03' }))).toBe('web-2026-03');
    const long = copyName(image({ name: 'x'.repeat(200) }), true);
    expect(long).toHaveLength(128);
    expect(long.endsWith('(ami-0a1b2c3d4e5f60718 from us-east-1)')).toBe(true);
  });
});

describe('redriveBackoffMs', () => {
  it('doubles from 15 minutes per re-drive and stops at 6 hours', () => {
    expect([1, 2, 3, 4, 5, 6, 10].map((n) => redriveBackoffMs(n) / 60_000)).toEqual([15, 30, 60, 120, 240, 360, 360]);
  });
});
