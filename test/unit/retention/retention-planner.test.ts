import { describe, expect, it } from 'vitest';
import { PolicyError } from '../../../lib/domain/policy.ts';
import { copyName } from '../../../lib/domain/replication.ts';
import {
  backupSignal,
  familyName,
  parseTime,
  planRetention,
  RetentionPlanError,
  type DeregisterAction,
  type RetentionAction,
  type RetentionPlan,
} from '../../../lib/domain/retention-planner.ts';
import { TAG } from '../../../lib/domain/tags.ts';
import { ACCOUNT, DAY, NOW, daysAgo, image, inventory, policy } from './fixtures.ts';

const actionOf = (plan: RetentionPlan, imageId: string): RetentionAction => {
  const a = plan.actions.find((x) => x.imageId === imageId);
  if (!a) throw new Error(`no action for ${imageId}`);
  return a;
};
const reasonOf = (plan: RetentionPlan, imageId: string): string => {
  const a = actionOf(plan, imageId);
  return a.action === 'keep' ? a.reason : a.action;
};

/** An old image plus a newer sibling of its family, so keepLatest 1 protects the sibling only. */
function withNewerSibling(overrides: Parameters<typeof image>[0] = {}) {
  const old = image({ name: 'web-1.0.0', creationDate: daysAgo(200), ...overrides });
  const newer = image({ name: 'web-2.0.0', creationDate: daysAgo(1) });
  return { old, newer };
}

describe('planRetention: keep rules', () => {
  it('keeps images owned by another account', () => {
    const { old, newer } = withNewerSibling({ ownerId: '999988887777' });
    const plan = planRetention(inventory([old, newer]), policy(), NOW);
    expect(actionOf(plan, old.imageId)).toMatchObject({
      action: 'keep',
      reason: 'not-owned',
      detail: 'owned by 999988887777',
    });
  });

  it.each([
    ['owner alias', { imageOwnerAlias: 'aws-backup-vault' }],
    ['aws:backup tag', { tags: { 'aws:backup:source-resource': 'arn:aws:ec2:us-east-1:111122223333:instance/i-1' } }],
    ['AwsBackup_ name', { name: 'AwsBackup_i-0123_6f1e' }],
  ])('keeps images made by AWS Backup (%s)', (_label, overrides) => {
    const { old, newer } = withNewerSibling(overrides);
    const plan = planRetention(inventory([old, newer]), policy(), NOW);
    expect(reasonOf(plan, old.imageId)).toBe('backup-owned');
  });

  it('does not take a user tag that merely mentions backup for AWS Backup', () => {
    expect(backupSignal(image({ tags: { backup: 'aws' }, name: 'backup-web' }))).toBeUndefined();
  });

  it('keeps images the selector leaves out (include tags, name patterns, exclusions)', () => {
    const { old, newer } = withNewerSibling({ tags: { team: 'b' } });
    newer.tags = { team: 'b' };
    const byTag = planRetention(inventory([old, newer]), policy({}, { selector: { includeTags: { team: 'a' } } }), NOW);
    expect(reasonOf(byTag, old.imageId)).toBe('not-in-scope');
    const byName = planRetention(inventory([old, newer]), policy({}, { selector: { namePatterns: ['app-*'] } }), NOW);
    expect(reasonOf(byName, old.imageId)).toBe('not-in-scope');
    const excluded = planRetention(
      inventory([old, newer]),
      policy({}, { selector: { excludeTags: { team: '*' } } }),
      NOW,
    );
    expect(reasonOf(excluded, old.imageId)).toBe('not-in-scope');
    const included = planRetention(
      inventory([old, newer]),
      policy({}, { selector: { includeTags: { team: 'b' }, namePatterns: ['web-*'] } }),
      NOW,
    );
    expect(reasonOf(included, old.imageId)).toBe('deregister');
  });

  it('treats replicas as in scope without the selector includes, but applies its exclusions', () => {
    const replica = { [TAG.role]: 'replica', [TAG.sourceImageId]: 'ami-gone', [TAG.sourceRegion]: 'us-west-2' };
    const { old, newer } = withNewerSibling({ tags: replica });
    newer.tags = { ...replica };
    const included = planRetention(
      inventory([old, newer]),
      policy({}, { selector: { includeTags: { team: 'a' } } }),
      NOW,
    );
    expect(actionOf(included, old.imageId)).toMatchObject({ action: 'deregister', scope: 'replicas' });
    const excluded = planRetention(
      inventory([old, newer]),
      policy({}, { selector: { excludeNamePatterns: ['web-1*'] } }),
      NOW,
    );
    expect(reasonOf(excluded, old.imageId)).toBe('not-in-scope');
  });

  it('keeps images tagged ami-dr:retain=true (any case)', () => {
    const { old, newer } = withNewerSibling({ tags: { [TAG.retain]: 'TRUE' } });
    expect(reasonOf(planRetention(inventory([old, newer]), policy(), NOW), old.imageId)).toBe('retained');
  });

  it('keeps deregistration-protected images', () => {
    const { old, newer } = withNewerSibling({ deregistrationProtection: true });
    const plan = planRetention(inventory([old, newer]), policy(), NOW);
    expect(actionOf(plan, old.imageId)).toMatchObject({ action: 'keep', reason: 'deregistration-protected' });
  });

  it('removes an aged protected image, releasing its protection first, only where its scope says so', () => {
    const { old, newer } = withNewerSibling({ deregistrationProtection: true });
    const released = planRetention(inventory([old, newer]), policy({ sources: { releaseProtection: true } }), NOW);
    expect(actionOf(released, old.imageId)).toMatchObject({ action: 'deregister', releaseProtection: true });
    const otherScope = planRetention(inventory([old, newer]), policy({ replicas: { releaseProtection: true } }), NOW);
    expect(actionOf(otherScope, old.imageId)).toMatchObject({ action: 'keep', reason: 'deregistration-protected' });
  });

  it('keeps images in flux and ignores deregistered ones', () => {
    const pending = image({ state: 'pending', creationDate: daysAgo(300) });
    const gone = image({ state: 'deregistered', creationDate: daysAgo(300) });
    const plan = planRetention(
      inventory([pending, gone]),
      policy({ allowRemovingAll: true, sources: { keepLatest: 0 } }),
      NOW,
    );
    expect(reasonOf(plan, pending.imageId)).toBe('in-progress');
    expect(reasonOf(plan, gone.imageId)).toBe('deregistered');
  });

  it('keeps everything when retention is disabled, and a scope without days', () => {
    const { old, newer } = withNewerSibling();
    expect(reasonOf(planRetention(inventory([old, newer]), policy({ enabled: false }), NOW), old.imageId)).toBe(
      'retention-disabled',
    );
    const noDays = policy({ sources: { deprecateAfterDays: undefined, deregisterAfterDays: undefined } });
    expect(reasonOf(planRetention(inventory([old, newer]), noDays, NOW), old.imageId)).toBe('no-rule');
  });

  it.each([
    ['instance', 'i-0abc'],
    ['launch-template', 'lt-0abc:$Latest(3)'],
    ['launch-configuration', 'lc-web'],
    ['auto-scaling-group', 'asg-web'],
    ['fleet', 'fleet-0abc (lt-0abc:4)'],
    ['spot-fleet', 'sfr-0abc (lt-0abc:4)'],
    ['image-reference', 'arn:aws:ssm:us-east-1:111122223333:parameter/golden'],
  ] as const)('keeps images referenced by a %s, naming it', (kind, id) => {
    const { old, newer } = withNewerSibling();
    const plan = planRetention(inventory([old, newer], { refs: { [old.imageId]: [{ kind, id }] } }), policy(), NOW);
    const action = actionOf(plan, old.imageId);
    expect(action).toMatchObject({ action: 'keep', reason: 'referenced' });
    expect(action.detail).toContain(id);
  });

  it('ignores references when protectInUse is off', () => {
    const { old, newer } = withNewerSibling();
    const plan = planRetention(
      inventory([old, newer], { refs: { [old.imageId]: [{ kind: 'instance', id: 'i-1' }] } }),
      policy({ protectInUse: false }),
      NOW,
    );
    expect(reasonOf(plan, old.imageId)).toBe('deregister');
  });

  it('keeps the newest keepLatest available images of each family, however old', () => {
    const a = [1, 2, 3, 4].map((v) => image({ name: `web-${v}.0`, creationDate: daysAgo(400 - v) }));
    const failedNewest = image({ name: 'web-9.0', creationDate: daysAgo(300), state: 'failed' });
    const other = image({ name: 'api-1.0', creationDate: daysAgo(500) });
    const plan = planRetention(inventory([...a, failedNewest, other]), policy({ sources: { keepLatest: 2 } }), NOW);
    expect(a.map((i) => reasonOf(plan, i.imageId))).toEqual([
      'deregister',
      'deregister',
      'latest-in-family',
      'latest-in-family',
    ]);
    // A failed image never displaces a launchable one; it is removed when old like any other.
    expect(reasonOf(plan, failedNewest.imageId)).toBe('deregister');
    expect(reasonOf(plan, other.imageId)).toBe('latest-in-family');
  });

  it('forms families by the family tag when set, by name where the tag is missing (with a warning)', () => {
    const t1 = image({ name: 'x-1', tags: { Family: 'alpha' }, creationDate: daysAgo(300) });
    const t2 = image({ name: 'y-2', tags: { Family: 'alpha' }, creationDate: daysAgo(200) });
    const untagged = image({ name: 'alpha-3', creationDate: daysAgo(250) });
    const plan = planRetention(inventory([t1, t2, untagged]), policy({ sources: { family: { tag: 'Family' } } }), NOW);
    expect(actionOf(plan, t1.imageId)).toMatchObject({ action: 'deregister', family: 'tag:alpha' });
    expect(actionOf(plan, t2.imageId)).toMatchObject({ reason: 'latest-in-family', family: 'tag:alpha' });
    expect(actionOf(plan, untagged.imageId)).toMatchObject({ reason: 'latest-in-family', family: 'name:alpha' });
    expect(plan.warnings.join('\n')).toMatch(
      new RegExp(`family.tag "Family" is missing on 1 image.*${untagged.imageId}`),
    );
  });

  it('refuses to act on a scope whose family tag no image carries (an unknown tag is a policy error)', () => {
    const { old, newer } = withNewerSibling();
    const plan = planRetention(inventory([old, newer]), policy({ sources: { family: { tag: 'Famliy' } } }), NOW);
    expect(reasonOf(plan, old.imageId)).toBe('family-tag-unknown');
    expect(plan.errors).toEqual([
      expect.stringContaining('retention.sources.family.tag: no image in scope carries the tag "Famliy"'),
    ]);
  });

  it('keeps replicas whose source still exists, and those whose source could not be checked', () => {
    const replicaOf = (src: string, region = 'us-west-2') => ({
      [TAG.role]: 'replica',
      [TAG.sourceImageId]: src,
      [TAG.sourceRegion]: region,
    });
    const live = image({ name: 'web-1', tags: replicaOf('ami-live'), creationDate: daysAgo(300) });
    const dead = image({ name: 'web-2', tags: replicaOf('ami-dead'), creationDate: daysAgo(299) });
    const unknown = image({ name: 'web-3', tags: replicaOf('ami-x', 'eu-central-1'), creationDate: daysAgo(298) });
    const newest = image({ name: 'web-4', tags: replicaOf('ami-y'), creationDate: daysAgo(1) });
    const inv = inventory([live, dead, unknown, newest], {
      sources: { checkedRegions: ['us-west-2'], live: new Set(['us-west-2/ami-live']) },
    });
    const plan = planRetention(inv, policy(), NOW);
    expect(reasonOf(plan, live.imageId)).toBe('live-source');
    expect(reasonOf(plan, dead.imageId)).toBe('deregister');
    expect(reasonOf(plan, unknown.imageId)).toBe('source-unknown');
    const off = planRetention(inv, policy({ keepReplicasOfLiveSources: false }), NOW);
    expect(reasonOf(off, live.imageId)).toBe('deregister');
  });

  it('keeps images younger than the first threshold, and unreadable dates', () => {
    const { old, newer } = withNewerSibling({ creationDate: daysAgo(29.9) });
    const bad = image({ name: 'web-0.1', creationDate: 'yesterday' });
    const plan = planRetention(inventory([old, newer, bad]), policy(), NOW);
    expect(actionOf(plan, old.imageId)).toMatchObject({
      reason: 'not-old-enough',
      detail: '29 days old, younger than 30 days',
    });
    expect(reasonOf(plan, bad.imageId)).toBe('unknown-age');
    expect(plan.warnings).toContain(`${bad.imageId}: creation date "yesterday" is not a date; kept`);
  });
});

describe('planRetention: deprecate and deregister', () => {
  it('deprecates between deprecateAfterDays and deregisterAfterDays, at now rounded up to the minute', () => {
    const { old, newer } = withNewerSibling({ creationDate: daysAgo(45) });
    const plan = planRetention(inventory([old, newer]), policy(), NOW + 1500);
    expect(actionOf(plan, old.imageId)).toMatchObject({
      action: 'deprecate',
      deprecateAt: new Date(NOW + 60_000).toISOString(),
      scope: 'sources',
      family: 'name:web',
    });
  });

  it('does not deprecate an image already deprecated by then, or disabled', () => {
    const { old, newer } = withNewerSibling({ creationDate: daysAgo(45), deprecationTime: daysAgo(2) });
    const disabled = image({ name: 'web-0.5', creationDate: daysAgo(50), state: 'disabled' });
    const later = image({
      name: 'web-0.7',
      creationDate: daysAgo(50),
      deprecationTime: new Date(NOW + 30 * DAY).toISOString(),
    });
    const soon = image({
      name: 'web-0.8',
      creationDate: daysAgo(50),
      deprecationTime: new Date(NOW + 2 * 3_600_000).toISOString(),
    });
    const plan = planRetention(inventory([old, newer, disabled, later, soon]), policy(), NOW);
    // Set for within a day (e.g. by the last run, a minute after its plan time): done.
    expect(reasonOf(plan, soon.imageId)).toBe('already-deprecated');
    expect(reasonOf(plan, old.imageId)).toBe('already-deprecated');
    expect(reasonOf(plan, disabled.imageId)).toBe('already-deprecated');
    // Deprecation scheduled later than the policy wants is brought forward.
    expect(reasonOf(plan, later.imageId)).toBe('deprecate');
  });

  it('deregisters past deregisterAfterDays, deprecation only or deregistration only', () => {
    const { old, newer } = withNewerSibling({ creationDate: daysAgo(90) });
    expect(reasonOf(planRetention(inventory([old, newer]), policy(), NOW), old.imageId)).toBe('deregister');
    const onlyDeprecate = policy({ sources: { deregisterAfterDays: undefined } });
    expect(reasonOf(planRetention(inventory([old, newer]), onlyDeprecate, NOW), old.imageId)).toBe('deprecate');
    const onlyDeregister = policy({ sources: { deprecateAfterDays: undefined } });
    const young = image({ name: 'web-1.5', creationDate: daysAgo(60) });
    const plan = planRetention(inventory([old, young, newer]), onlyDeregister, NOW);
    expect(reasonOf(plan, old.imageId)).toBe('deregister');
    expect(actionOf(plan, young.imageId)).toMatchObject({
      reason: 'not-old-enough',
      detail: '60 days old, younger than 90 days',
    });
  });

  it('carries what apply needs: root device, bundle location, snapshots with sizes and sharing', () => {
    const shared = 'snap-shared';
    const old = image({
      name: 'web-1',
      creationDate: daysAgo(300),
      snapshots: [
        { snapshotId: 'snap-own', volumeSizeGiB: 8 },
        { snapshotId: shared, volumeSizeGiB: 20 },
      ],
    });
    const kept = image({
      name: 'web-2',
      creationDate: daysAgo(1),
      snapshots: [{ snapshotId: shared, volumeSizeGiB: 20 }],
    });
    const s3 = image({
      name: 'web-0',
      creationDate: daysAgo(310),
      rootDeviceType: 'instance-store',
      imageLocation: 'bundles/web/image.manifest.xml',
      snapshots: [],
    });
    const plan = planRetention(
      inventory([old, kept, s3], { snapshotSizes: new Map([['snap-own', 10]]) }),
      policy({ bundleBuckets: ['bundles'] }),
      NOW,
    );
    const a = actionOf(plan, old.imageId) as DeregisterAction;
    expect(a.snapshots).toEqual([
      { snapshotId: 'snap-own', sizeGiB: 10, sharedWithKeptImage: false },
      { snapshotId: shared, sizeGiB: 20, sharedWithKeptImage: true },
    ]);
    expect(actionOf(plan, s3.imageId)).toMatchObject({
      action: 'deregister',
      rootDeviceType: 'instance-store',
      imageLocation: 'bundles/web/image.manifest.xml',
    });
    expect(plan.expectedSnapshotGiB).toBe(10);
  });

  it('leaves an S3 bundle to the last registered image that names it', () => {
    const bundle = (name: string, days: number, location: string) =>
      image({
        name,
        creationDate: daysAgo(days),
        rootDeviceType: 'instance-store',
        imageLocation: location,
        snapshots: [],
      });
    // web-1 names the bundle web-3 (kept: newest) names too; app-1 and app-2 share one and are both removed.
    const webOld = bundle('web-1', 300, 'bundles/web/image.manifest.xml');
    const webNew = bundle('web-3', 1, 'bundles/web/image.manifest.xml');
    const appA = bundle('app-1', 300, 'bundles/app/image.manifest.xml');
    const appB = bundle('app-2', 290, 'bundles/app/image.manifest.xml');
    const own = bundle('app-0', 310, 'bundles/app0/image.manifest.xml');
    const appNew = image({ name: 'app-9', creationDate: daysAgo(1) });
    const plan = planRetention(
      inventory([webOld, webNew, appA, appB, own, appNew]),
      policy({ bundleBuckets: ['bundles'] }),
      NOW,
    );
    expect(actionOf(plan, webNew.imageId)).toMatchObject({ action: 'keep' });
    expect(actionOf(plan, webOld.imageId)).toMatchObject({ action: 'deregister', keepBundle: true });
    const app = [actionOf(plan, appA.imageId), actionOf(plan, appB.imageId)] as DeregisterAction[];
    expect(app.map((a) => a.action)).toEqual(['deregister', 'deregister']);
    // The last in the plan deletes it: apply starts it after the others.
    expect(app.map((a) => a.keepBundle ?? false)).toEqual([true, false]);
    expect((actionOf(plan, own.imageId) as DeregisterAction).keepBundle).toBeUndefined();
  });

  it('counts a snapshot shared by two removed images once', () => {
    const snaps = [{ snapshotId: 'snap-both', volumeSizeGiB: 30 }];
    const a = image({ name: 'web-1', creationDate: daysAgo(300), snapshots: snaps });
    const b = image({ name: 'web-2', creationDate: daysAgo(290), snapshots: snaps });
    const c = image({ name: 'web-3', creationDate: daysAgo(1), snapshots: [] });
    const plan = planRetention(inventory([a, b, c]), policy(), NOW);
    expect(plan.expectedSnapshotGiB).toBe(30);
  });

  it('gives every image exactly one action, and is deterministic', () => {
    const images = Array.from({ length: 50 }, (_, i) =>
      image({ name: `fam${i % 4}-${i}`, creationDate: daysAgo(i * 7) }),
    );
    const p1 = planRetention(inventory(images), policy(), NOW);
    const p2 = planRetention(inventory(images), policy(), new Date(NOW));
    expect(p1.actions.map((a) => a.imageId)).toEqual(images.map((i) => i.imageId));
    expect(p2).toEqual(p1);
  });
});

describe('planRetention: bad input', () => {
  it('refuses a policy object that could remove everything without the opt-in', () => {
    const p = structuredClone(policy()) as ReturnType<typeof policy> & {
      retention: { sources: { keepLatest: number } };
    };
    p.retention.sources.keepLatest = 0;
    expect(() => planRetention(inventory([]), p, NOW)).toThrow(RetentionPlanError);
    expect(() => planRetention(inventory([]), p, NOW)).toThrow(/retention.sources.keepLatest is 0/);
  });

  it('refuses negative days in a hand-built policy', () => {
    const p = structuredClone(policy()) as { retention: { replicas: { deregisterAfterDays: number } } };
    p.retention.replicas.deregisterAfterDays = -1;
    expect(() => planRetention(inventory([]), p as ReturnType<typeof policy>, NOW)).toThrow(
      /retention.replicas.deregisterAfterDays must be a whole number >= 0/,
    );
  });

  it('refuses an invalid now and an inventory without an account', () => {
    expect(() => planRetention(inventory([]), policy(), Number.NaN)).toThrow(/now is not a valid time/);
    expect(() => planRetention(inventory([], { accountId: '' }), policy(), NOW)).toThrow(/12-digit account id/);
  });

  it('the policy schema rejects negative days, keepLatest 0 without opt-in, and deregister before deprecate', () => {
    const bad = (retention: Record<string, unknown>) => {
      try {
        policy(retention);
      } catch (e) {
        expect(e).toBeInstanceOf(PolicyError);
        return (e as PolicyError).problems;
      }
      return [];
    };
    expect(bad({ sources: { deprecateAfterDays: -5 } })).toContain(
      'retention.sources.deprecateAfterDays: must not be negative',
    );
    expect(bad({ replicas: { keepLatest: 0 } })).toEqual([
      expect.stringMatching(/^retention.replicas.keepLatest: is 0/),
    ]);
    expect(bad({ replicas: { keepLatest: 0 }, allowRemovingAll: true })).toEqual([]);
    expect(bad({ sources: { deprecateAfterDays: 60, deregisterAfterDays: 30 } })).toEqual([
      'retention.sources.deregisterAfterDays: must not be less than deprecateAfterDays',
    ]);
  });
});

describe('familyName', () => {
  it.each([
    ['web-1.2.3', 'web'],
    ['app-20240101-1530', 'app'],
    ['app_2024-01-01T15-30-00Z', 'app'],
    ['ubuntu-22.04-amd64-20240101', 'ubuntu-22.04-amd64'],
    ['web-v2', 'web'],
    ['web-V2.1', 'web'],
    ['api-server-a1b2c3d', 'api-server'],
    ['api-server-deadbeef', 'api-server-deadbeef'],
    ['web 1.0', 'web'],
    ['1.2.3', '1.2.3'],
    ['web', 'web'],
    ['web2', 'web2'],
    ['golden-amd64', 'golden-amd64'],
    ['web-1.2.3 (ami-0123456789abcdef0 from us-east-1)', 'web'],
    ['golden (ami-0123456789abcdef0 from eu-west-1)', 'golden'],
  ])('%s -> %s', (name, family) => {
    expect(familyName(name)).toBe(family);
  });

  it("puts a copy that replication named after its source into the source name's family", () => {
    const source = { name: 'web-1.2.3', imageId: 'ami-0123456789abcdef0', region: 'us-east-1' };
    expect(familyName(copyName(source, true))).toBe('web');
  });
});

it('test fixtures use the account the planner expects', () => {
  expect(ACCOUNT).toMatch(/^\d{12}$/);
});

describe('parseTime', () => {
  it.each([
    '2024-01-01T15:30:00.000Z',
    '2024-02-29T00:00:00Z',
    '1999-12-31T23:59:59.999Z',
    '2024-01-01T15:30:00+02:00',
    '2024-13-01T00:00:00Z',
    'yesterday',
    '2024-0a-01T00:00:00Z',
  ])('reads %s as Date.parse does', (s) => {
    expect(parseTime(s)).toEqual(Date.parse(s));
  });
});
