import { describe, expect, it } from 'vitest';
import type { ImageRecord } from '../../../lib/domain/image.ts';
import type { Policy } from '../../../lib/domain/policy.ts';
import {
  KEEP_REASONS,
  planRetention,
  RETENTION_RULES,
  RetentionPlanError,
  type AnyRetentionRule,
  type RetentionAction,
  type RetentionPlan,
  type RuleName,
} from '../../../lib/domain/retention-planner.ts';
import { buildRetentionReport } from '../../../lib/domain/retention-report.ts';
import { TAG } from '../../../lib/domain/tags.ts';
import { daysAgo, image, inventory, NOW, policy } from './fixtures.ts';

const actionOf = (plan: RetentionPlan, imageId: string): RetentionAction => {
  const a = plan.actions.find((x) => x.imageId === imageId);
  if (!a) throw new Error(`no action for ${imageId}`);
  return a;
};

interface Scenario {
  /** The image the rule decides. */
  subject: ImageRecord;
  others?: ImageRecord[];
  policy?: Readonly<Policy>;
  extra?: Parameters<typeof inventory>[1];
  detail: string;
}

/** A newer sibling of family `web`, so keepLatest 1 protects it and not the subject. */
const sibling = (): ImageRecord => image({ name: 'web-9.0.0', creationDate: daysAgo(1) });
const web = (overrides: Partial<ImageRecord> = {}): ImageRecord =>
  image({ name: 'web-1.0.0', creationDate: daysAgo(200), ...overrides });
const replicaOf = (src: string, region: string) => ({
  [TAG.role]: 'replica',
  [TAG.sourceImageId]: src,
  [TAG.sourceRegion]: region,
});

/** One scenario per rule: typed by RuleName, so a rule added to the table without a case here fails to compile. */
const SCENARIOS: Record<RuleName, () => Scenario> = {
  'not-owned': () => ({ subject: web({ ownerId: '999988887777' }), detail: 'owned by 999988887777' }),
  'backup-owned': () => ({
    subject: web({ name: 'AwsBackup_i-0123' }),
    detail: 'named AwsBackup_* (made by AWS Backup)',
  }),
  deregistered: () => ({ subject: web({ state: 'deregistered' }), detail: 'already deregistered' }),
  'not-in-scope': () => ({
    subject: web(),
    policy: policy({}, { selector: { includeTags: { team: 'a' } } }),
    detail: 'the policy selector does not cover it',
  }),
  retained: () => ({ subject: web({ tags: { [TAG.retain]: 'true' } }), detail: `tagged ${TAG.retain}=true` }),
  'deregistration-protected': () => ({
    subject: web({ deregistrationProtection: true }),
    detail: 'deregistration protection is on',
  }),
  'in-progress': () => ({ subject: web({ state: 'pending' }), detail: 'state pending' }),
  'retention-disabled': () => ({
    subject: web(),
    policy: policy({ enabled: false }),
    detail: 'retention.enabled is false',
  }),
  'no-rule': () => ({
    subject: web(),
    policy: policy({ sources: { deprecateAfterDays: undefined, deregisterAfterDays: undefined } }),
    detail: 'retention.sources sets neither deprecateAfterDays nor deregisterAfterDays',
  }),
  'unknown-age': () => ({
    subject: web({ creationDate: 'yesterday' }),
    detail: 'creation date "yesterday" is not a date',
  }),
  'family-tag-unknown': () => ({
    subject: web(),
    others: [sibling()],
    policy: policy({ sources: { family: { tag: 'Famliy' } } }),
    detail: 'family tag "Famliy" is on no image in scope',
  }),
  referenced: () => {
    const subject = web();
    return {
      subject,
      others: [sibling()],
      extra: { refs: { [subject.imageId]: [{ kind: 'instance', id: 'i-0abc' }] } },
      detail: 'referenced by instance i-0abc',
    };
  },
  'latest-in-family': () => ({ subject: web(), detail: 'among the newest 1 of family name:web' }),
  'live-source': () => ({
    subject: web({ tags: replicaOf('ami-live', 'us-west-2') }),
    others: [image({ name: 'web-9.0.0', creationDate: daysAgo(1), tags: replicaOf('ami-new', 'us-west-2') })],
    extra: { sources: { checkedRegions: ['us-west-2'], live: new Set(['us-west-2/ami-live']) } },
    detail: 'its source us-west-2/ami-live still exists',
  }),
  'source-unknown': () => ({
    subject: web({ tags: replicaOf('ami-x', 'eu-central-1') }),
    others: [image({ name: 'web-9.0.0', creationDate: daysAgo(1), tags: replicaOf('ami-new', 'us-west-2') })],
    extra: { sources: { checkedRegions: ['us-west-2'], live: new Set() } },
    detail: 'source eu-central-1/ami-x could not be checked',
  }),
  'bundle-bucket-not-allowed': () => ({
    subject: web({ rootDeviceType: 'instance-store', imageLocation: 'other-bucket/web/image.manifest.xml' }),
    others: [sibling()],
    policy: policy({ bundleBuckets: ['ami-bundles'] }),
    detail: 'bundle bucket not allowed: other-bucket is not in retention.bundleBuckets',
  }),
  'deregister-after-days': () => ({
    subject: web(),
    others: [sibling()],
    detail: '200 days old, past deregisterAfterDays 90',
  }),
  'not-old-enough': () => ({
    subject: web({ creationDate: daysAgo(10) }),
    others: [sibling()],
    detail: '10 days old, younger than 30 days',
  }),
  disabled: () => ({
    subject: web({ creationDate: daysAgo(45), state: 'disabled' }),
    others: [sibling()],
    detail: '45 days old, disabled',
  }),
  'already-deprecated': () => ({
    subject: web({ creationDate: daysAgo(45), deprecationTime: daysAgo(2) }),
    others: [sibling()],
    detail: `45 days old, deprecated since ${daysAgo(2)}`,
  }),
  'deprecate-after-days': () => ({
    subject: web({ creationDate: daysAgo(45) }),
    others: [sibling()],
    detail: '45 days old, past deprecateAfterDays 30',
  }),
};

const planFor = (s: Scenario, rules?: readonly AnyRetentionRule[]): RetentionPlan =>
  planRetention(inventory([s.subject, ...(s.others ?? [])], s.extra), s.policy ?? policy(), NOW, rules);

/** RETENTION_RULES with the row named `moved` put just before the row named `before`. */
function reordered(moved: RuleName, before: RuleName): AnyRetentionRule[] {
  const row = RETENTION_RULES.find((r) => r.name === moved)!;
  const rest = RETENTION_RULES.filter((r) => r !== row);
  rest.splice(
    rest.findIndex((r) => r.name === before),
    0,
    row,
  );
  return rest;
}

describe('retention rules: each rule gives its reason', () => {
  it('has one scenario for every rule of the table, and rule names are unique', () => {
    const names = RETENTION_RULES.map((r) => r.name);
    expect(new Set(names).size).toBe(names.length);
    expect(Object.keys(SCENARIOS).sort()).toEqual([...names].sort());
  });

  it.each(RETENTION_RULES.map((r) => [r.name, r] as const))('%s', (name, rule) => {
    const scenario = SCENARIOS[name]();
    const action = actionOf(planFor(scenario), scenario.subject.imageId);
    expect(action.rule).toBe(name);
    expect(action.detail).toBe(scenario.detail);
    if (action.action === 'keep') expect(action.reason).toBe(rule.gives);
    else expect(action.action).toBe(rule.gives);
  });

  it('lists the keep reasons in the order of the rules that give them', () => {
    const gives = RETENTION_RULES.map((r) => r.gives).filter((g) => g !== 'deprecate' && g !== 'deregister');
    expect(KEEP_REASONS).toEqual([...new Set(gives), 'held-back']);
    expect(KEEP_REASONS.indexOf('retained')).toBeLessThan(KEEP_REASONS.indexOf('referenced'));
  });
});

describe('retention rules: the table order decides', () => {
  it('reports the earlier rule for a retained image that is also in use', () => {
    const subject = web({ tags: { [TAG.retain]: 'true' } });
    const plan = planRetention(
      inventory([subject, sibling()], { refs: { [subject.imageId]: [{ kind: 'instance', id: 'i-0abc' }] } }),
      policy(),
      NOW,
    );
    expect(actionOf(plan, subject.imageId)).toMatchObject({ action: 'keep', rule: 'retained', reason: 'retained' });
  });

  it('changes the deciding rule when two overlapping rows swap', () => {
    const both: Scenario = {
      subject: web({ tags: { [TAG.retain]: 'true' }, deregistrationProtection: true }),
      detail: '',
    };
    expect(actionOf(planFor(both), both.subject.imageId).rule).toBe('retained');
    const swapped = reordered('deregistration-protected', 'retained');
    expect(actionOf(planFor(both, swapped), both.subject.imageId).rule).toBe('deregistration-protected');

    // The newest of its family and in use: referenced comes first, unless the table says otherwise.
    const subject = web({ creationDate: daysAgo(300) });
    const inUse: Scenario = {
      subject,
      extra: { refs: { [subject.imageId]: [{ kind: 'launch-template', id: 'lt-0abc' }] } },
      detail: '',
    };
    expect(actionOf(planFor(inUse), subject.imageId).rule).toBe('referenced');
    const latestFirst = reordered('latest-in-family', 'referenced');
    expect(actionOf(planFor(inUse, latestFirst), subject.imageId).rule).toBe('latest-in-family');
  });

  it('counts in families only images no earlier stage decided: a retained image takes no keepLatest place', () => {
    const old = web({ creationDate: daysAgo(300) });
    const retainedNewer = image({ name: 'web-2.0.0', creationDate: daysAgo(200), tags: { [TAG.retain]: 'true' } });
    const plan = planRetention(inventory([old, retainedNewer]), policy(), NOW);
    expect(actionOf(plan, old.imageId).rule).toBe('latest-in-family');

    // An image in use is ranked in its family (in-use is a family-stage rule), so it keeps its place.
    const usedNewer = image({ name: 'web-2.0.0', creationDate: daysAgo(200) });
    const used = planRetention(
      inventory([old, usedNewer], { refs: { [usedNewer.imageId]: [{ kind: 'instance', id: 'i-0abc' }] } }),
      policy(),
      NOW,
    );
    expect(actionOf(used, usedNewer.imageId).rule).toBe('referenced');
    expect(actionOf(used, old.imageId).rule).toBe('deregister-after-days');
  });

  it('refuses a table whose rows are out of stage order', () => {
    const outOfOrder = reordered('referenced', 'not-owned');
    expect(() => planFor(SCENARIOS['not-owned'](), outOfOrder)).toThrow(RetentionPlanError);
    expect(() => planFor(SCENARIOS['not-owned'](), outOfOrder)).toThrow(
      /not-owned \(stage image\) comes after a later stage/,
    );
  });

  it('refuses to leave an image undecided when no row applies', () => {
    const withoutDeprecate = RETENTION_RULES.filter((r) => r.name !== 'deprecate-after-days');
    expect(() => planFor(SCENARIOS['deprecate-after-days'](), withoutDeprecate)).toThrow(/no retention rule decided/);
  });
});

describe('retention report: names the deciding rule', () => {
  it('carries the rule of every kept, deprecated and removed image', () => {
    const kept = web({ tags: { [TAG.retain]: 'true' } });
    const deprecated = web({ name: 'web-2.0.0', creationDate: daysAgo(45) });
    const removed = web({ name: 'web-1.5.0', creationDate: daysAgo(200) });
    const plan = planRetention(inventory([kept, deprecated, removed, sibling()]), policy(), NOW);
    const report = buildRetentionReport({
      plan,
      policy: policy(),
      dryRun: true,
      imageReferences: 'checked',
      startedAt: NOW,
      finishedAt: NOW,
    });
    expect(report.kept).toContainEqual(
      expect.objectContaining({ imageId: kept.imageId, rule: 'retained', reason: 'retained' }),
    );
    expect(report.planned.deprecate).toEqual([
      expect.objectContaining({ imageId: deprecated.imageId, rule: 'deprecate-after-days' }),
    ]);
    expect(report.planned.deregister).toEqual([
      expect.objectContaining({ imageId: removed.imageId, rule: 'deregister-after-days' }),
    ]);
  });
});
