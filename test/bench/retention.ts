import type { ImageRecord } from '../../lib/domain/image.ts';
import { parsePolicy } from '../../lib/domain/policy.ts';
import type { ImageReference, RetentionInventory } from '../../lib/domain/retention-inventory.ts';
import { planRetention, RETENTION_RULES, type RetentionPlan } from '../../lib/domain/retention-planner.ts';
import {
  inventoryFingerprint,
  parseSavedPlan,
  planLimits,
  skippedActions,
  toSavedPlan,
} from '../../lib/domain/saved-plan.ts';
import { TAG } from '../../lib/domain/tags.ts';
import { daysAgo, REGION, retentionHarness, runUnderFaults, START } from '../integration/retention/helpers.ts';
import { startTwin } from '../../local/twin/twin.ts';
import { autoScalingClient, ec2Client, s3Client, stsClient } from '../../lib/aws/clients.ts';
import { sweepOrphans } from '../../lib/workflows/orphan-sweep.ts';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { TokenBucketPacer } from '../../lib/aws/pacer.ts';

/**
 * Retention: the planner's time for 100,000 images (median of 5 runs after a warm-up; target well under 1 s),
 * EC2/S3/STS calls per removed image, and the twin time it takes to remove 10,000 images at AWS's rate limits
 * (throttling at scale 1 on a ManualClock: DeregisterImage's bucket of 100 refilling at 5/s is the limit).
 */

const ACCOUNT = '000000000000';

/** A realistic account: 1,000 families, a tenth tagged by family, replicas, references, shared snapshots. */
function inventoryOf(n: number): RetentionInventory {
  const images: ImageRecord[] = [];
  const references = new Map<string, ImageReference[]>();
  for (let i = 0; i < n; i++) {
    const imageId = `ami-${i.toString(16).padStart(17, '0')}`;
    const tags: Record<string, string> = { Team: `team-${i % 20}` };
    if (i % 10 === 0) tags.Family = `fam-${i % 1000}`;
    if (i % 4 === 0)
      Object.assign(tags, {
        [TAG.role]: 'replica',
        [TAG.sourceImageId]: `ami-src${i}`,
        [TAG.sourceRegion]: 'us-east-1',
      });
    if (i % 97 === 0) tags[TAG.retain] = 'true';
    if (i % 50 === 0) references.set(imageId, [{ kind: 'instance', id: `i-${i}` }]);
    images.push({
      imageId,
      region: 'us-west-2',
      ownerId: i % 200 === 0 ? '999988887777' : ACCOUNT,
      name: `svc${i % 1000}-1.${Math.floor(i / 1000)}.0-${20240101 + (i % 28)}`,
      state: i % 300 === 0 ? 'failed' : 'available',
      creationDate: new Date(START - (i % 400) * 86_400_000 - i * 1000).toISOString(),
      deregistrationProtection: i % 333 === 0,
      rootDeviceType: 'ebs',
      public: false,
      productCodes: [],
      snapshots: [
        { snapshotId: `snap-${(i - (i % 3 === 0 ? 1 : 0)).toString(16).padStart(17, '0')}`, volumeSizeGiB: 8 },
      ],
      tags,
    });
  }
  // Strings as a parser hands them over (flat), not as this loop built them.
  const parsed = JSON.parse(JSON.stringify(images)) as ImageRecord[];
  return {
    region: 'us-west-2',
    accountId: ACCOUNT,
    images: parsed,
    snapshotSizes: new Map(),
    references,
    imageReferences: 'checked',
    sources: {
      checkedRegions: ['us-east-1'],
      live: new Set(parsed.filter((_, i) => i % 8 === 0).map((x) => `us-east-1/${x.tags[TAG.sourceImageId]}`)),
    },
    warnings: [],
  };
}

export function plannerFigures(): Record<string, string | number> {
  const inventory = inventoryOf(100_000);
  const scope = { deprecateAfterDays: 60, deregisterAfterDays: 90, keepLatest: 3, family: { tag: 'Family' } };
  const policy = parsePolicy({
    regions: { sources: ['us-east-1'], dr: [{ region: 'us-west-2', kmsKeyId: 'alias/ami-dr' }] },
    selector: { excludeTags: { Team: 'team-19' } },
    retention: { sources: scope, replicas: scope },
  });
  planRetention(inventory, policy, START); // warm-up
  const times: number[] = [];
  let plan = planRetention(inventory, policy, START);
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    plan = planRetention(inventory, policy, START);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const count = (action: string) => plan.actions.filter((a) => a.action === action).length;
  return {
    ...savedPlanFigures(inventory, policy, plan),
    'planner, 100,000 images (median of 5)': `${(times[2] ?? 0).toFixed(0)} ms (min ${(times[0] ?? 0).toFixed(0)}, max ${(times[4] ?? 0).toFixed(0)}; target < 1000 ms)`,
    'planner, actions': `${count('deregister')} deregister, ${count('deprecate')} deprecate, ${count('keep')} keep`,
  };
}

/**
 * A saved plan of 100,000 images: its size, the time to write and read it, and what applying it adds to planning:
 * the limits (the intersection rule), the re-plan under them and the skipped actions.
 */
export function savedPlanFigures(
  inventory: RetentionInventory,
  policy: Parameters<typeof planRetention>[1],
  plan: RetentionPlan,
): Record<string, string> {
  const time = (fn: () => void): number => {
    const t = performance.now();
    fn();
    return performance.now() - t;
  };
  let text = '';
  const write = time(() => {
    const saved = toSavedPlan({
      policy: { name: policy.name, version: 'bench' },
      accountId: ACCOUNT,
      now: new Date(START).toISOString(),
      regions: [{ plan, fingerprint: inventoryFingerprint(inventory) }],
    });
    text = JSON.stringify(saved, null, 2);
  });
  let region = parseSavedPlan(text).plans[0];
  const read = time(() => (region = parseSavedPlan(text).plans[0]));
  const apply = time(() => {
    if (!region) return;
    const limits = planLimits(region, plan);
    skippedActions(region, planRetention(inventory, policy, START, RETENTION_RULES, { limits }));
  });
  return {
    'saved plan, 100,000 images': `${(text.length / 1024 / 1024).toFixed(1)} MB; written in ${write.toFixed(0)} ms (fingerprint included), read and checked in ${read.toFixed(0)} ms`,
    'apply --plan on top of a fresh plan (limits, re-plan, skipped)': `${apply.toFixed(0)} ms`,
  };
}

async function removalFigures(): Promise<Record<string, string | number>> {
  const started = performance.now();
  const h = await retentionHarness({ throttling: { enabled: true, scale: 1 } });
  try {
    for (let i = 0; i < 10_000; i++)
      h.twin.seed.image(REGION, { name: `fleet${i % 10}-${i}`, creationDate: daysAgo(100 + i / 1000) });
    const calls = { ec2: 0, other: 0 };
    const count = (client: { middlewareStack: { add: (...args: never[]) => void } }, key: 'ec2' | 'other') =>
      (client.middlewareStack.add as (mw: unknown, options: unknown) => void)(
        (next: (args: unknown) => Promise<unknown>) => async (args: unknown) => {
          calls[key]++;
          return next(args);
        },
        { step: 'initialize', name: 'benchCount' },
      );
    count(ec2Client(h.clients, REGION) as never, 'ec2');
    count(autoScalingClient(h.clients, REGION) as never, 'other');
    count(stsClient(h.clients, REGION) as never, 'other');
    count(s3Client(h.clients, REGION) as never, 'other');
    const t0 = h.clock.now();
    const { report, calls: byKind } = await h.run({ concurrency: 8 });
    const twinSeconds = (h.clock.now() - t0) / 1000;
    const removed = report.counts.removed;
    if (removed !== 9_990 || report.errors.length)
      throw new Error(
        `expected 9,990 removals without errors, got ${removed} and ${JSON.stringify(report.errors.slice(0, 3))}`,
      );
    return {
      'removed (10,000 aged images, keepLatest 1 of 10 families)': removed,
      'API calls per removed image (all)': ((calls.ec2 + calls.other) / removed).toFixed(3),
      'mutating calls per removed image': (byKind.mutating / removed).toFixed(3),
      'DescribeImageReferences + other describes': `${calls.ec2 - byKind.mutating} EC2 describes, ${calls.other} Auto Scaling/STS calls`,
      'twin time to remove 10,000 images at AWS rate limits': `${twinSeconds.toFixed(0)} s (${(twinSeconds / 60).toFixed(1)} min; bucket floor (9,990 - 100) / 5 = 1,978 s)`,
      'wall time for that run': `${((performance.now() - started) / 1000).toFixed(1)} s`,
    };
  } finally {
    await h.stop();
  }
}

/** The deadline as a bound in real time: a 25 s budget under 30% 503s on DeregisterImage and 5% throttling. */
async function deadlineFigures(): Promise<Record<string, string | number>> {
  const twin = await startTwin({ accountId: '111122223333' });
  try {
    const { run, tookMs } = await runUnderFaults(twin, 25_000);
    const took = (tookMs / 1000).toFixed(1);
    console.log(`retention budget 25 s took ${took} s`);
    return {
      'retention budget 25 s took (target < 27 s)': `${took} s`,
      'under the budget: removed, left for the next run': `${run.report.counts.removed} removed, ${run.report.counts.pending} left (${run.report.pending.filter((p) => p.interrupted).length} cut in flight)`,
    };
  } finally {
    await twin.stop();
  }
}

/**
 * The orphan sweep over 100,000 snapshots (1,000 registered images; 5% orphans of gone AMIs, some shared, some
 * AWS Backup's, some too young; the rest named by live images or by no AMI), at AWS's rate limits, dry-run.
 */
async function sweepFigures(): Promise<Record<string, string | number>> {
  const started = performance.now();
  const h = await retentionHarness({ throttling: { enabled: true, scale: 1 } });
  try {
    const { seed } = h.twin;
    const live = Array.from({ length: 1_000 }, (_, i) =>
      seed.image(REGION, { name: `svc${i % 50}-${i}`, creationDate: daysAgo(1 + (i % 30)) }),
    );
    const old = daysAgo(200);
    let orphans = 0;
    for (let i = 0; i < 99_000; i++) {
      const gone = `ami-${(0xdead0000 + i).toString(16).padStart(17, '0')}`;
      const byGone = `Created by CreateImage(i-0123456789abcdef0) for ${gone} from vol-0123456789abcdef0`;
      if (i % 20 === 0) {
        const shared = i % 400 === 0;
        const backup = i % 1000 === 20;
        if (!shared && !backup) orphans++;
        seed.snapshot(REGION, {
          sizeGiB: 8,
          startTime: old,
          description: byGone,
          ...(shared ? { createVolumePermissions: [{ userId: '111122223333' }] } : {}),
          ...(backup ? { tags: { 'aws:backup:source-resource': gone } } : {}),
        });
      } else if (i % 20 === 1) seed.snapshot(REGION, { sizeGiB: 8, startTime: daysAgo(2), description: byGone });
      else if (i % 2 === 0)
        seed.snapshot(REGION, {
          sizeGiB: 8,
          startTime: old,
          description: `Created by CreateImage(i-0123456789abcdef0) for ${live[i % live.length]!} from vol-0123456789abcdef0`,
        });
      else seed.snapshot(REGION, { sizeGiB: 8, startTime: old, description: `manual ${i}` });
    }
    const pacer = new TokenBucketPacer({ now: () => h.clock.now(), sleep: async (ms) => void h.clock.advance(ms) });
    const t0 = h.clock.now();
    const wall = performance.now();
    const sweep = await sweepOrphans({
      ec2: ec2Client(h.clients, REGION),
      pacer,
      now: h.clock.now(),
      minAgeDays: 30,
      pricePerGbMonth: 0.05,
    });
    if (sweep.candidates.length !== orphans)
      throw new Error(`expected ${orphans} orphans, the sweep found ${sweep.candidates.length}`);
    const twinSeconds = (h.clock.now() - t0) / 1000;
    return {
      'orphan sweep, snapshots scanned': sweep.scanned,
      'orphan sweep, orphans found (dry-run)': `${sweep.candidates.length}, ${sweep.gib} GiB (~$${sweep.estimatedMonthlySaving.toFixed(2)}/month)`,
      'orphan sweep, kept by reason': JSON.stringify(sweep.keptByReason),
      'orphan sweep, EC2 calls': `${sweep.calls.describe} describes (DescribeSnapshotAttribute per suspect dominates), ${sweep.calls.mutating} deletes`,
      'orphan sweep, twin time at AWS rate limits': `${twinSeconds.toFixed(0)} s`,
      'orphan sweep, wall time (sweep / with seeding)': `${((performance.now() - wall) / 1000).toFixed(1)} s / ${((performance.now() - started) / 1000).toFixed(1)} s`,
    };
  } finally {
    await h.stop();
  }
}

export async function bench(): Promise<Record<string, string | number>> {
  return {
    ...(await multiRegionFigures()),
    ...plannerFigures(),
    ...(await removalFigures()),
    ...(await deadlineFigures()),
    ...(await sweepFigures()),
  };
}

/**
 * Scheduled retention over 5 regions × 2,000 aged images, on the retention state machine (one unit per region,
 * side by side) at AWS's rate limits: twin time over one region's floor, (2,000 − 100) / 5 = 380 s (DeregisterImage's
 * bucket of 100 refilling at 5/s, per region). Regions one after another would take about 5 times the floor.
 */
export async function multiRegionFigures(): Promise<Record<string, string | number>> {
  const { startLocalRuntime } = await import('../../local/runtime/runtime.ts');
  const { ManualClock } = await import('../../local/twin/clock.ts');
  const regions = ['us-east-1', 'us-east-2', 'us-west-2', 'eu-west-1', 'eu-central-1'];
  const scope = { deprecateAfterDays: 30, deregisterAfterDays: 90, keepLatest: 0 };
  const policy = parsePolicy({
    regions: {
      sources: regions.slice(0, 2),
      dr: regions.slice(2).map((region) => ({ region, kmsKeyId: 'alias/ami-dr' })),
    },
    // The plan of 10,000 removals is stored in S3 (too large to pass between states inline).
    retention: { sources: scope, replicas: scope, allowRemovingAll: true, reportBucket: 'ami-dr-reports' },
  });
  const wall = performance.now();
  const rt = await startLocalRuntime({
    policy,
    clock: new ManualClock(START),
    twinOptions: { s3: true, throttling: { enabled: true, scale: 1 } },
  });
  try {
    await s3Client(rt.clients, regions[0]!).send(new CreateBucketCommand({ Bucket: 'ami-dr-reports' }));
    for (const region of regions)
      for (let i = 0; i < 2_000; i++)
        rt.twin.seed.image(region, { name: `fleet${i % 10}-${i}`, creationDate: daysAgo(100 + i / 1000) });
    const t0 = rt.twin.clock.now();
    const started = await rt.startScheduled('retention');
    await rt.waitForIdle();
    const execution = rt.stepFunctions.execution(started.executionArn)!;
    const twinSeconds = ((execution.stopDate ?? rt.twin.clock.now()) - t0) / 1000;
    const report = (JSON.parse(execution.output ?? '{}') as { report?: { totals: { removed: number }; failures: [] } })
      .report;
    if (execution.status !== 'SUCCEEDED' || report?.totals.removed !== 10_000 || report.failures.length)
      throw new Error(`expected 10,000 removals, got ${execution.status}: ${execution.output ?? execution.cause}`);
    const ratio = twinSeconds / 380;
    console.log(`retention multi-region ratio ${ratio.toFixed(3)}`);
    return {
      'retention multi-region ratio': `${ratio.toFixed(3)} (5 regions × 2,000 removals in ${twinSeconds.toFixed(0)} s of twin time; one region's floor 380 s; target ≤ 1.10)`,
      'multi-region: state transitions, wall time': `${execution.transitions.length}, ${((performance.now() - wall) / 1000).toFixed(1)} s`,
    };
  } finally {
    await rt.stop();
  }
}
