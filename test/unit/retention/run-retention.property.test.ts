import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EC2Client } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { createClients } from '../../../lib/aws/clients.ts';
import { TokenBucketPacer } from '../../../lib/aws/pacer.ts';
import { applyRetentionPlan } from '../../../lib/aws/retention-apply.ts';
import { parsePolicy } from '../../../lib/domain/policy.ts';
import { planRetention } from '../../../lib/domain/retention-planner.ts';
import { runRetention } from '../../../lib/workflows/retention.ts';
import { inventoryArb, policyArb } from './arbitraries.ts';
import { FakeAccount } from './fake-account.ts';
import { ACCOUNT, NOW } from './fixtures.ts';

function fakeTime(start = NOW) {
  let t = start;
  return { clock: () => t, sleep: async (ms: number) => void (t += ms) };
}

const run = (
  account: FakeAccount,
  policy: Parameters<typeof runRetention>[0]['policy'],
  extra: Partial<Parameters<typeof runRetention>[0]> = {},
) =>
  runRetention({
    clients: createClients({ maxAttempts: 1 }),
    policy,
    region: 'us-east-1',
    accountId: ACCOUNT,
    now: NOW,
    ...fakeTime(),
    ...extra,
  });

const removals = (account: FakeAccount) => account.mutations.filter((m) => m.action !== 'EnableImageDeprecation');

describe('runRetention properties (in-memory account)', () => {
  it('dry-run never mutates, and reports what it would do', async () => {
    await fc.assert(
      fc.asyncProperty(inventoryArb, policyArb, async (inventory, policy) => {
        const account = new FakeAccount(inventory);
        try {
          const before = structuredClone([...account.images]);
          const { report, plan } = await run(account, policy, { dryRun: true });
          expect(account.mutations).toEqual([]);
          expect([...account.images]).toEqual(before);
          expect(report.dryRun).toBe(true);
          expect(report.planned.deregister.length).toBe(plan.actions.filter((a) => a.action === 'deregister').length);
        } finally {
          account.restore();
        }
      }),
      { numRuns: 40 },
    );
  });

  it("the policy's dryRun binds: a caller's dryRun: false (the Lambda's event, the CLI) never mutates", async () => {
    await fc.assert(
      fc.asyncProperty(inventoryArb, policyArb, async (inventory, arbitrary) => {
        const policy = parsePolicy({ ...arbitrary, retention: { ...arbitrary.retention, dryRun: true } });
        const account = new FakeAccount(inventory);
        try {
          const { report } = await run(account, policy, { dryRun: false });
          expect(account.mutations).toEqual([]);
          expect(report.dryRun).toBe(true);
        } finally {
          account.restore();
        }
      }),
      { numRuns: 20 },
    );
  });

  it('never deprecates or removes an image that only DescribeImageReferences knows is in use (SSM parameters, ...)', async () => {
    await fc.assert(
      fc.asyncProperty(inventoryArb, policyArb, async (inventory, policy) => {
        // The fake account's scans find nothing: every reference is one only DescribeImageReferences reports.
        const account = new FakeAccount(inventory);
        try {
          const { report } = await run(account, policy, { dryRun: false });
          if (!policy.retention.protectInUse) return;
          const touched = account.mutations
            .filter((m) => m.action === 'DeregisterImage' || m.action === 'EnableImageDeprecation')
            .map((m) => m.id);
          const planned = [...report.planned.deregister, ...report.planned.deprecate].map((a) => a.imageId);
          for (const id of [...touched, ...planned]) expect(inventory.references.get(id) ?? []).toEqual([]);
        } finally {
          account.restore();
        }
      }),
      { numRuns: 40 },
    );
  });

  it('a second run acts on nothing the first did, and nothing is removed twice', async () => {
    await fc.assert(
      fc.asyncProperty(inventoryArb, policyArb, async (inventory, policy) => {
        const account = new FakeAccount(inventory);
        try {
          const first = await run(account, policy, { dryRun: false });
          const afterFirst = account.mutations.length;
          const second = await run(account, policy, { dryRun: false });
          expect(account.mutations.length).toBe(afterFirst);
          expect(second.report.counts.removed + second.report.counts.deprecated).toBe(0);
          const ids = removals(account).map((m) => `${m.action} ${m.id}`);
          expect(new Set(ids).size).toBe(ids.length);
          expect(first.report.counts.removed).toBe(first.plan.actions.filter((a) => a.action === 'deregister').length);
        } finally {
          account.restore();
        }
      }),
      { numRuns: 40 },
    );
  });

  it('applying the same plan twice acts once: the second finds every image gone and deletes nothing again', async () => {
    await fc.assert(
      fc.asyncProperty(inventoryArb, policyArb, async (inventory, policy) => {
        const account = new FakeAccount(inventory);
        try {
          const plan = planRetention(inventory, policy, NOW);
          const options = () => ({
            ec2: new EC2Client({ maxAttempts: 1 }),
            s3: new S3Client({ maxAttempts: 1 }),
            pacer: new TokenBucketPacer({ now: fakeTime().clock, sleep: async () => {} }),
          });
          const first = await applyRetentionPlan(plan, options());
          const deleted = account.mutations.filter(
            (m) => m.action === 'DeleteSnapshot' || m.action === 'DeleteObject',
          ).length;
          const second = await applyRetentionPlan(plan, options());
          expect(second.removed.every((r) => r.alreadyGone && r.snapshots.length === 0)).toBe(true);
          expect(second.removed.filter((r) => r.rootDeviceType === 'ebs')).toHaveLength(
            first.removed.filter((r) => r.rootDeviceType === 'ebs' && !r.alreadyGone).length,
          );
          expect(
            account.mutations.filter((m) => m.action === 'DeleteSnapshot' || m.action === 'DeleteObject').length,
          ).toBe(deleted);
        } finally {
          account.restore();
        }
      }),
      { numRuns: 40 },
    );
  });

  it('runs cut short by their deadline together remove exactly what one unbounded run would', async () => {
    await fc.assert(
      fc.asyncProperty(
        inventoryArb,
        policyArb,
        fc.integer({ min: 4_100, max: 5_000 }),
        async (inventory, policy, budgetMs) => {
          const expected = new FakeAccount(inventory);
          let planned: string[];
          try {
            await run(expected, policy, { dryRun: false });
            planned = [
              ...new Set(expected.mutations.filter((m) => m.action === 'DeregisterImage').map((m) => m.id)),
            ].sort();
          } finally {
            expected.restore();
          }
          const account = new FakeAccount(inventory);
          try {
            // Small buckets (scale 0.05: 5 DeregisterImage tokens, refilling at 0.25/s; 5 describe tokens at 1/s) and
            // a budget of 4-5 s, of which 2 s are kept in hand and about 2 s go to the describes beyond the first five:
            // each run gets through its burst of five removals, then stops.
            for (let i = 0; ; i++) {
              const time = fakeTime(NOW + i * 3_600_000);
              const { report } = await run(account, policy, {
                dryRun: false,
                rateScale: 0.05,
                clock: time.clock,
                sleep: time.sleep,
                deadline: time.clock() + budgetMs,
              });
              // Plan errors (a family tag on no image of one scope) leave the run incomplete for good: stop when nothing is left.
              if (report.counts.pending === 0) break;
              expect(report.counts.removed + report.counts.deprecated).toBeGreaterThan(0);
              expect(i).toBeLessThan(30);
            }
            const removed = account.mutations.filter((m) => m.action === 'DeregisterImage').map((m) => m.id);
            expect(new Set(removed).size).toBe(removed.length);
            expect([...removed].sort()).toEqual(planned);
          } finally {
            account.restore();
          }
        },
      ),
      { numRuns: 25 },
    );
  });
});
