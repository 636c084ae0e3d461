import { describe, expect, it } from 'vitest';
import { policyVersion } from '../../../lib/domain/policy.ts';
import { planRetention, RETENTION_RULES, type RetentionPlan } from '../../../lib/domain/retention-planner.ts';
import type { RetentionInventory } from '../../../lib/domain/retention-inventory.ts';
import {
  checkSavedPlan,
  inventoryFingerprint,
  parseSavedPlan,
  planLimits,
  SavedPlanError,
  SavedPlanRefusedError,
  skippedActions,
  toSavedPlan,
  type SavedPlan,
} from '../../../lib/domain/saved-plan.ts';
import { TAG } from '../../../lib/domain/tags.ts';
import { ACCOUNT, NOW, REGION, daysAgo, image, inventory, policy } from './fixtures.ts';

// Deprecate after 30 days, remove after 90, keep the newest of each family.
const p = policy();
const newest = image({ imageId: 'ami-0000000000000000a', name: 'web-9', creationDate: daysAgo(1) });
const old = image({ imageId: 'ami-0000000000000000b', name: 'web-1', creationDate: daysAgo(200) });
const aging = image({ imageId: 'ami-0000000000000000c', name: 'web-2', creationDate: daysAgo(45) });

function save(inv: RetentionInventory, plan = planRetention(inv, p, NOW)): SavedPlan {
  return toSavedPlan({
    policy: { name: p.name, version: policyVersion(p) },
    accountId: ACCOUNT,
    now: new Date(NOW).toISOString(),
    regions: [{ plan, fingerprint: inventoryFingerprint(inv) }],
  });
}

/** What `apply --plan` does in a region: the fresh plan limited by the saved one, and what it skips. */
function applyTo(
  saved: SavedPlan,
  inv: RetentionInventory,
): { plan: RetentionPlan; skipped: ReturnType<typeof skippedActions> } {
  const region = saved.plans[0]!;
  const limits = planLimits(region, planRetention(inv, p, NOW));
  const plan = planRetention(inv, p, NOW, RETENTION_RULES, { limits });
  return { plan, skipped: skippedActions(region, plan) };
}
const acting = (plan: RetentionPlan) =>
  plan.actions.filter((a) => a.action !== 'keep').map((a) => `${a.action} ${a.imageId}`);

describe('saved retention plans', () => {
  it('round-trips through JSON, with what it was made for and every action with its rule and reason', () => {
    const inv = inventory([newest, old, aging]);
    const saved = save(inv);
    const back = parseSavedPlan(JSON.stringify(saved));
    expect(back).toEqual(saved);
    expect(back).toMatchObject({ schemaVersion: 1, accountId: ACCOUNT, regions: [REGION], policy: { name: p.name } });
    expect(back.plans[0]?.actions.map((a) => [a.imageId, a.action, a.rule])).toEqual([
      [newest.imageId, 'keep', 'latest-in-family'],
      [old.imageId, 'deregister', 'deregister-after-days'],
      [aging.imageId, 'deprecate', 'deprecate-after-days'],
    ]);
    expect(back.plans[0]?.actions[1]?.snapshots).toEqual([old.snapshots[0]?.snapshotId]);
  });

  it('fingerprints the images, their states and snapshots, not their order', () => {
    const a = inventoryFingerprint(inventory([newest, old]));
    expect(inventoryFingerprint(inventory([old, newest]))).toBe(a);
    expect(inventoryFingerprint(inventory([newest, { ...old, state: 'disabled' }]))).not.toBe(a);
    expect(inventoryFingerprint(inventory([newest, { ...old, snapshots: [] }]))).not.toBe(a);
    expect(inventoryFingerprint(inventory([newest]))).not.toBe(a);
  });

  it.each([
    ['not JSON', '{"schemaVersion": 1,', /^plan\.json is not JSON: /],
    [
      'another schema version',
      '{"schemaVersion": 2}',
      /^plan\.json has schemaVersion 2; this ami-dr reads schemaVersion 1$/,
    ],
    ['no schema version', '{"plans": []}', /^plan\.json has schemaVersion null; this ami-dr reads schemaVersion 1$/],
    [
      'a field missing',
      JSON.stringify({ ...save(inventory([old])), accountId: undefined }),
      /^plan\.json is not an ami-dr retention plan: accountId: /,
    ],
    [
      'a bad action',
      JSON.stringify({
        ...save(inventory([old])),
        plans: [{ ...save(inventory([old])).plans[0], actions: [{ imageId: 'ami-1', action: 'explode' }] }],
      }),
      /^plan\.json is not an ami-dr retention plan: plans\.0\.actions\.0\.name: /,
    ],
  ])('refuses a file that is %s, in one line', (_what, text, message) => {
    const attempt = () => parseSavedPlan(text, 'plan.json');
    expect(attempt).toThrow(SavedPlanError);
    expect(attempt).toThrow(message);
    try {
      attempt();
    } catch (error) {
      expect((error as Error).message).not.toContain('\n');
    }
  });

  it('refuses as a whole a plan for another account or another policy version', () => {
    const saved = save(inventory([old]));
    const target = { accountId: ACCOUNT, policy: saved.policy, regions: [REGION, 'us-west-2'] };
    expect(() => checkSavedPlan(saved, target)).not.toThrow();
    expect(() => checkSavedPlan(saved, { ...target, accountId: '444455556666' })).toThrow(
      new SavedPlanRefusedError(`the plan was made for account ${ACCOUNT}, not 444455556666: nothing applied`),
    );
    expect(() => checkSavedPlan(saved, { ...target, policy: { ...saved.policy, version: 'abcdef12' } })).toThrow(
      /made with policy .* version [0-9a-f]{8}, not .* version abcdef12: nothing applied; make a new plan/,
    );
    expect(() => checkSavedPlan(saved, { ...target, regions: ['us-west-2'] })).toThrow(/does not govern \(us-east-1\)/);
  });
});

describe('the intersection rule (apply --plan)', () => {
  it('applies the saved actions the account still warrants, unchanged', () => {
    const inv = inventory([newest, old, aging]);
    const { plan, skipped } = applyTo(save(inv), inv);
    expect(acting(plan)).toEqual([`deregister ${old.imageId}`, `deprecate ${aging.imageId}`]);
    expect(skipped).toEqual([]);
  });

  it('never adds an action: what the saved plan did not list is held back', () => {
    const saved = save(inventory([newest, aging]));
    const later = inventory([newest, aging, old]); // old appeared (or aged) since
    const { plan, skipped } = applyTo(saved, later);
    expect(acting(plan)).toEqual([`deprecate ${aging.imageId}`]);
    expect(plan.actions.find((a) => a.imageId === old.imageId)).toMatchObject({
      action: 'keep',
      reason: 'held-back',
      rule: 'deregister-after-days',
      detail: 'not in the saved plan (200 days old, past deregisterAfterDays 90)',
    });
    expect(skipped).toEqual([]);
  });

  it('skips, with the fresh reason, an image that became in use, retained, protected or has lost its newer sibling', () => {
    const saved = save(inventory([newest, old, aging]));
    const cases: [RetentionInventory, string, string][] = [
      [
        inventory([newest, old, aging], { refs: { [old.imageId]: [{ kind: 'instance', id: 'i-0abc' }] } }),
        'referenced',
        'referenced by instance i-0abc',
      ],
      [inventory([newest, { ...old, tags: { [TAG.retain]: 'true' } }, aging]), 'retained', `tagged ${TAG.retain}=true`],
      [
        inventory([newest, { ...old, deregistrationProtection: true }, aging]),
        'deregistration-protected',
        'deregistration protection is on',
      ],
      [inventory([old]), 'latest-in-family', 'among the newest 1 of family name:web'],
    ];
    for (const [now, reason, detail] of cases) {
      const { plan, skipped } = applyTo(saved, now);
      expect(acting(plan)).not.toContain(`deregister ${old.imageId}`);
      expect(skipped.find((s) => s.imageId === old.imageId)).toEqual({
        imageId: old.imageId,
        name: old.name,
        action: 'deregister',
        rule: reason,
        reason,
        detail,
      });
    }
  });

  it('skips an image gone meanwhile', () => {
    const saved = save(inventory([newest, old, aging]));
    const { skipped } = applyTo(saved, inventory([newest, aging]));
    expect(skipped).toEqual([
      {
        imageId: old.imageId,
        name: old.name,
        action: 'deregister',
        rule: 'gone',
        reason: 'gone',
        detail: 'no longer in the account',
      },
    ]);
  });

  it('a saved deprecation of an image now due for removal deprecates it; a saved removal now only due for deprecation is skipped', () => {
    const later = inventory([newest, { ...old, creationDate: daysAgo(45) }, { ...aging, creationDate: daysAgo(200) }]);
    const { plan, skipped } = applyTo(save(inventory([newest, old, aging])), later);
    expect(acting(plan)).toEqual([`deprecate ${aging.imageId}`]);
    expect(skipped).toEqual([
      {
        imageId: old.imageId,
        name: old.name,
        action: 'deregister',
        rule: 'deprecate-after-days',
        reason: 'held-back',
        detail:
          'the saved plan removes it, but now it is only due for deprecation (45 days old, past deprecateAfterDays 30)',
      },
    ]);
  });

  it('keeps a bundle that an image the saved plan did not list still names', () => {
    const bundle = {
      rootDeviceType: 'instance-store' as const,
      imageLocation: 'bundles/web/image.manifest.xml',
      snapshots: [],
    };
    const a = image({ imageId: 'ami-0000000000000001a', name: 'app-1', creationDate: daysAgo(300), ...bundle });
    const b = image({ imageId: 'ami-0000000000000001b', name: 'app-2', creationDate: daysAgo(200), ...bundle });
    const top = image({ imageId: 'ami-0000000000000001c', name: 'app-3', creationDate: daysAgo(1) });
    const full = inventory([top, a, b]);
    const fresh = planRetention(full, p, NOW);
    // The plan removes both; the later of the two deletes the shared bundle.
    expect(
      fresh.actions
        .filter((x) => x.action === 'deregister')
        .map((x) => [x.imageId, x.action === 'deregister' && x.keepBundle]),
    ).toEqual([
      [a.imageId, true],
      [b.imageId, undefined],
    ]);
    // A saved plan listing only b (a was kept then): removing b must leave the bundle a still names.
    const saved = save(full, { ...fresh, actions: fresh.actions.filter((x) => x.imageId !== a.imageId) });
    const { plan } = applyTo(saved, full);
    expect(plan.actions.find((x) => x.imageId === b.imageId)).toMatchObject({ action: 'deregister', keepBundle: true });
    expect(plan.actions.find((x) => x.imageId === a.imageId)).toMatchObject({ action: 'keep', reason: 'held-back' });
  });
});

describe('cascades are left to a later run', () => {
  it('a copy whose source the same run removes is kept, and says so', () => {
    const source = `${REGION}/ami-0000000000000000f`;
    const copy = image({
      name: 'web-1',
      creationDate: daysAgo(200),
      tags: { [TAG.role]: 'replica', [TAG.sourceImageId]: 'ami-0000000000000000f', [TAG.sourceRegion]: REGION },
    });
    const sources = { checkedRegions: [REGION], live: new Set([source]) };
    const inv = inventory([copy, image({ name: 'web-9', creationDate: daysAgo(1), tags: { [TAG.role]: 'replica' } })], {
      sources,
    });
    expect(planRetention(inv, p, NOW).actions[0]?.detail).toBe(`its source ${source} still exists`);
    const inRun = planRetention({ ...inv, sources: { ...sources, removedInRun: new Set([source]) } }, p, NOW);
    expect(inRun.actions[0]).toMatchObject({
      action: 'keep',
      rule: 'live-source',
      detail: `its source ${source} is removed in this run; this copy goes in a later run`,
    });
  });
});
