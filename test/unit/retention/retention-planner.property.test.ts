import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backupSignal, familyName, planRetention, scopeMatcher } from '../../../lib/domain/retention-planner.ts';
import { isRetained } from '../../../lib/domain/tags.ts';
import { inventoryArb, policyArb } from './arbitraries.ts';
import { NOW } from './fixtures.ts';

const acted = (a: { action: string }) => a.action === 'deprecate' || a.action === 'deregister';

describe('planRetention properties', () => {
  it('never deprecates or removes an image that is retained, protected, referenced, Backup-owned or not owned', () => {
    fc.assert(
      fc.property(inventoryArb, policyArb, (inventory, policy) => {
        const plan = planRetention(inventory, policy, NOW);
        const byId = new Map(inventory.images.map((i) => [i.imageId, i]));
        for (const a of plan.actions.filter(acted)) {
          const image = byId.get(a.imageId)!;
          expect(image.ownerId).toBe(inventory.accountId);
          expect(backupSignal(image)).toBeUndefined();
          expect(isRetained(image.tags)).toBe(false);
          expect(image.deregistrationProtection).toBe(false);
          if (policy.retention.protectInUse) expect(inventory.references.get(a.imageId) ?? []).toEqual([]);
          expect(['pending', 'transient', 'deregistered']).not.toContain(image.state);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('never removes one of the newest keepLatest launchable in-scope images of a family', () => {
    fc.assert(
      fc.property(inventoryArb, policyArb, (inventory, policy) => {
        const plan = planRetention(inventory, policy, NOW);
        const scopeOf = scopeMatcher(policy);
        // The oracle: rank every owned, in-scope, available image of each family by creation date.
        const families = new Map<string, { id: string; created: number }[]>();
        for (const image of inventory.images) {
          const scope = scopeOf(image);
          if (!scope || image.ownerId !== inventory.accountId || image.state !== 'available' || backupSignal(image))
            continue;
          const tag = policy.retention[scope].family.tag;
          const key = `${scope}|${tag && image.tags[tag] !== undefined ? `tag:${image.tags[tag]}` : `name:${familyName(image.name)}`}`;
          families.set(key, [
            ...(families.get(key) ?? []),
            { id: image.imageId, created: Date.parse(image.creationDate) },
          ]);
        }
        const protectedIds = new Set<string>();
        for (const [key, members] of families) {
          const n = policy.retention[key.startsWith('sources') ? 'sources' : 'replicas'].keepLatest;
          members.sort((a, b) => b.created - a.created || (a.id < b.id ? -1 : 1));
          for (const m of members.slice(0, n)) protectedIds.add(m.id);
        }
        for (const a of plan.actions.filter(acted)) expect(protectedIds.has(a.imageId)).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('gives each image exactly one action, and removes only images past deregisterAfterDays', () => {
    fc.assert(
      fc.property(inventoryArb, policyArb, (inventory, policy) => {
        const plan = planRetention(inventory, policy, NOW);
        expect(plan.actions.map((a) => a.imageId)).toEqual(inventory.images.map((i) => i.imageId));
        for (const a of plan.actions) {
          if (a.action !== 'deregister') continue;
          const image = inventory.images.find((i) => i.imageId === a.imageId)!;
          const days = policy.retention[a.scope].deregisterAfterDays;
          expect(days).toBeDefined();
          expect(NOW - Date.parse(image.creationDate)).toBeGreaterThanOrEqual(days! * 86_400_000);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('replanning at the same time after the plan was carried out acts on nothing', () => {
    fc.assert(
      fc.property(inventoryArb, policyArb, (inventory, policy) => {
        const plan = planRetention(inventory, policy, NOW);
        const removed = new Set(plan.actions.filter((a) => a.action === 'deregister').map((a) => a.imageId));
        const deprecated = new Map(
          plan.actions.flatMap((a) => (a.action === 'deprecate' ? [[a.imageId, a.deprecateAt] as const] : [])),
        );
        const after = {
          ...inventory,
          images: inventory.images
            .filter((i) => !removed.has(i.imageId))
            .map((i) => (deprecated.has(i.imageId) ? { ...i, deprecationTime: deprecated.get(i.imageId) } : i)),
        };
        const again = planRetention(after, policy, NOW);
        // Removed images were never among a family's newest N, so the window does not move.
        expect(again.actions.filter(acted)).toEqual([]);
      }),
      { numRuns: 200 },
    );
  });
});
