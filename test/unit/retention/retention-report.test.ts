import { describe, expect, it } from 'vitest';
import type { DeregisterAction, RetentionPlan } from '../../../lib/domain/retention-planner.ts';
import { buildRetentionReport, retentionMetrics, type ApplyOutcome } from '../../../lib/domain/retention-report.ts';
import { ACCOUNT, NOW, policy } from './fixtures.ts';

const GIB = 1024 ** 3;
const removal = (imageId: string): DeregisterAction => ({
  action: 'deregister',
  rule: 'deregister-after-days',
  imageId,
  name: imageId,
  scope: 'sources',
  detail: 'old',
  rootDeviceType: 'instance-store',
  imageLocation: `bundles/${imageId}/image.manifest.xml`,
  snapshots: [],
});
const plan = (...actions: RetentionPlan['actions']): RetentionPlan => ({
  region: 'us-east-1',
  accountId: ACCOUNT,
  now: new Date(NOW).toISOString(),
  actions,
  errors: [],
  warnings: [],
  expectedSnapshotGiB: 0,
});
const report = (p: RetentionPlan, outcome: ApplyOutcome) =>
  buildRetentionReport({
    plan: p,
    policy: policy(),
    dryRun: false,
    imageReferences: 'checked',
    outcome,
    startedAt: NOW,
    finishedAt: NOW,
  });

describe('buildRetentionReport', () => {
  it('counts a bundle as deleted, and its bytes as freed, only when S3 deleted all of it', () => {
    const bundle = (id: string, deletedKeys: string[]) => ({
      bucket: 'bundles',
      manifestKey: `${id}/image.manifest.xml`,
      deletedKeys,
      bytes: 2 * GIB,
    });
    const outcome: ApplyOutcome = {
      deprecated: [],
      removed: [
        {
          imageId: 'ami-done',
          name: 'ami-done',
          rootDeviceType: 'instance-store',
          alreadyGone: false,
          snapshots: [],
          bundle: bundle('ami-done', ['ami-done/image.part.00', 'ami-done/image.manifest.xml']),
        },
        // S3 refused a part: the manifest (deleted last) stays, and so does most of the storage.
        {
          imageId: 'ami-half',
          name: 'ami-half',
          rootDeviceType: 'instance-store',
          alreadyGone: false,
          snapshots: [],
          bundle: bundle('ami-half', ['ami-half/image.part.00']),
        },
      ],
      errors: [
        { step: 'bundle', imageId: 'ami-half', code: 'BundleDeleteError', message: 'could not delete 1 object(s)' },
      ],
      pending: [],
      stoppedEarly: false,
      mutatingCalls: 5,
    };
    const r = report(plan(removal('ami-done'), removal('ami-half')), outcome);
    expect(r.counts.bundlesDeleted).toBe(1);
    expect(r.bundleGibFreed).toBe(2);
    expect(r.gibFreed).toBe(2);
    expect(retentionMetrics([r]).find((m) => m.name === 'GiBFreed')?.value).toBe(2);
  });
});
