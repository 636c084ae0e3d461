import type { ImageRecord, LaunchPermission } from '../../lib/domain/image.ts';
import { parsePolicy } from '../../lib/domain/policy.ts';
import { computeReadiness, imageKey, planReconciliation } from '../../lib/domain/readiness.ts';
import { copyTags } from '../../lib/domain/replication.ts';
import { renderReport, REPORT_FORMATS } from '../../lib/report/index.ts';
import { organizationReadiness } from './readiness-accounts.ts';

const IMAGES = 10_000;
const DR = ['us-west-2', 'eu-west-1', 'ap-southeast-2'];
const NOW = Date.UTC(2026, 5, 1);

/** Readiness for 10,000 source images × 3 DR regions (a copy per cell, 1% missing, 1% drifted), then each report format. */
export async function bench(): Promise<Record<string, string | number>> {
  const policy = parsePolicy({
    regions: { sources: ['us-east-1'], dr: DR.map((region) => ({ region, kmsKeyId: 'alias/ami-dr' })) },
  });
  const sources: ImageRecord[] = [];
  const copies: ImageRecord[] = [];
  const launchPermissions = new Map<string, LaunchPermission[]>();
  for (let i = 0; i < IMAGES; i++) {
    const creationDate = new Date(NOW - (i % 400) * 86_400_000).toISOString();
    const src: ImageRecord = base(`ami-${i.toString(16).padStart(17, '0')}`, 'us-east-1', `app-${i}`, creationDate, {
      Name: `app-${i}`,
      Team: 'core',
    });
    sources.push(src);
    launchPermissions.set(imageKey(src.region, src.imageId), [{ userId: '123456789012' }]);
    DR.forEach((region, j) => {
      if (i % 100 === j) return;
      const tags = copyTags(src, policy, new Date(Date.parse(creationDate) + 900_000).toISOString()).tags;
      if (i % 100 === 50 + j) tags.Team = 'edited';
      const copy = base(`ami-${(i * 4 + j + 1).toString(16).padStart(17, 'c')}`, region, src.name, creationDate, tags);
      copies.push(copy);
      launchPermissions.set(imageKey(region, copy.imageId), [{ userId: '123456789012' }]);
    });
  }
  const input = {
    policy,
    now: NOW,
    sources,
    copies,
    launchPermissions,
    keyIds: Object.fromEntries(DR.map((r) => [r, ['alias/ami-dr']])),
  };

  computeReadiness(input); // warm-up
  const t0 = performance.now();
  const report = computeReadiness(input);
  const computeMs = performance.now() - t0;
  const t1 = performance.now();
  const plan = planReconciliation(report);
  const planMs = performance.now() - t1;

  const result: Record<string, string | number> = {
    'readiness cells': report.summary.cells,
    'readiness compute ms (10,000 images × 3 regions)': round(computeMs),
    'reconciliation plan ms': round(planMs),
    're-drives / repairs planned': `${plan.redrive.length} / ${plan.repair.length}`,
  };
  for (const format of REPORT_FORMATS) {
    const t = performance.now();
    const text = renderReport(report, format);
    result[`render ${format} ms`] = round(performance.now() - t);
    result[`render ${format} size KiB`] = round(Buffer.byteLength(text) / 1024);
    if (format === 'html')
      result['html report size, 10000 images x 3 regions'] =
        `${(Buffer.byteLength(text) / 1_000_000).toFixed(2)} MB (target < 3 MB)`;
  }
  // The same over an organization, through the member roles on the twin.
  Object.assign(result, await organizationReadiness());
  return result;
}

function base(
  imageId: string,
  region: string,
  name: string,
  creationDate: string,
  tags: Record<string, string>,
): ImageRecord {
  return {
    imageId,
    region,
    ownerId: '000000000000',
    name,
    state: 'available',
    creationDate,
    deregistrationProtection: false,
    rootDeviceType: 'ebs',
    public: false,
    productCodes: [],
    snapshots: [
      {
        snapshotId: `snap-${imageId.slice(4)}`,
        encrypted: region !== 'us-east-1',
        kmsKeyId: region !== 'us-east-1' ? 'alias/ami-dr' : undefined,
      },
    ],
    tags,
  };
}

const round = (n: number): number => Math.round(n * 10) / 10;
