import { DeregisterImageCommand, EnableImageDeprecationCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type { S3Client } from '@aws-sdk/client-s3';
import type { DeprecateAction, DeregisterAction, RetentionPlan } from '../domain/retention-planner.ts';
import type {
  ApplyOutcome,
  BundleResult,
  DeprecatedImage,
  PendingAction,
  RemovedImage,
  RetentionError,
  RetentionStep,
} from '../domain/retention-report.ts';
import {
  BundleDeleteError,
  deleteBundle,
  readBundleManifest,
  REQUIRED_PERMISSIONS as BUNDLE_PERMISSIONS,
} from './bundles.ts';
import { TokenBucketPacer, type RateClass } from './pacer.ts';

/**
 * Carries out a retention plan: deprecations (EnableImageDeprecation) and removals (DeregisterImage with
 * DeleteAssociatedSnapshots; for instance-store images the S3 bundle too). Paced to EC2's token buckets,
 * idempotent (an image already gone is done, not an error, and is never counted as removed twice), and
 * bounded by a deadline: it stops before starting anything it may not finish in time and reports what is left,
 * which the next run's plan picks up again.
 */

/** DeleteAssociatedSnapshots deletes through ec2:DeleteSnapshot. */
export const REQUIRED_PERMISSIONS = [
  'ec2:EnableImageDeprecation',
  'ec2:DeregisterImage',
  'ec2:DeleteSnapshot',
  ...BUNDLE_PERMISSIONS,
] as const;

export interface ApplyOptions {
  ec2: EC2Client;
  /** The region's S3 client, for instance-store bundles. */
  s3: S3Client;
  pacer?: TokenBucketPacer;
  /** Epoch ms (on the pacer's clock) by which the apply must have returned. Default: none. */
  deadline?: number;
  /** Time kept in hand for one image's calls; grows with the slowest call seen. Default 2 s. */
  reserveMs?: number;
  /** Images worked on at once (per bucket). Default 4. */
  concurrency?: number;
  /** Called after each image, for progress output. */
  onProgress?: (done: number, total: number) => void;
  /** Aborted (Ctrl-C): nothing new is started; the calls in flight finish and the rest is reported as pending. */
  signal?: AbortSignal;
}

const GONE = new Set(['InvalidAMIID.NotFound', 'InvalidAMIID.Unavailable']);
const MINUTE_MS = 60_000;

export async function applyRetentionPlan(plan: RetentionPlan, options: ApplyOptions): Promise<ApplyOutcome> {
  const pacer = options.pacer ?? new TokenBucketPacer();
  const now = pacer.now;
  const deadline = options.deadline ?? Number.POSITIVE_INFINITY;
  const baseReserveMs = options.reserveMs ?? 2000;
  let slowestCallMs = 0;
  // An image takes up to three calls (GetObject, DeregisterImage, DeleteObjects); keep time for each at its slowest.
  const reserve = (): number => Math.max(baseReserveMs, 3 * 2 * slowestCallMs);
  const outcome: ApplyOutcome = {
    deprecated: [],
    removed: [],
    errors: [],
    pending: [],
    stoppedEarly: false,
    mutatingCalls: 0,
  };
  const deprecations = plan.actions.filter((a): a is DeprecateAction => a.action === 'deprecate');
  const removals = plan.actions.filter((a): a is DeregisterAction => a.action === 'deregister');
  const total = deprecations.length + removals.length;
  let done = 0;

  const fail = (step: RetentionStep, imageId: string, error: unknown): void => {
    const e = error as { name?: string; message?: string };
    outcome.errors.push({ step, imageId, code: e.name ?? 'Error', message: e.message ?? String(error) });
  };

  /** A paced call, counted, with its duration kept for the reserve. */
  const call = <T>(cls: RateClass, fn: () => Promise<T>): Promise<T> =>
    pacer.call(cls, async () => {
      outcome.mutatingCalls++;
      const started = now();
      try {
        return await fn();
      } finally {
        slowestCallMs = Math.max(slowestCallMs, now() - started);
      }
    });

  /** Whether there is time to start one more image of this class: its wait for a token plus the reserve. */
  const timeFor = (cls: RateClass): boolean => now() + pacer.delay(cls) + reserve() <= deadline;

  const deprecate = async (a: DeprecateAction): Promise<void> => {
    // EnableImageDeprecation refuses times in the past; the plan's `now` may be minutes behind by now.
    const earliest = Math.ceil((now() + 1000) / MINUTE_MS) * MINUTE_MS;
    const deprecateAt = new Date(Math.max(Date.parse(a.deprecateAt), earliest)).toISOString();
    const record: DeprecatedImage = { imageId: a.imageId, name: a.name, deprecateAt };
    try {
      await call('mutating', () =>
        options.ec2.send(new EnableImageDeprecationCommand({ ImageId: a.imageId, DeprecateAt: new Date(deprecateAt) })),
      );
      outcome.deprecated.push(record);
    } catch (error) {
      if (GONE.has((error as { name?: string }).name ?? '')) outcome.deprecated.push({ ...record, alreadyGone: true });
      else fail('deprecate', a.imageId, error);
    }
  };

  const deregister = async (a: DeregisterAction): Promise<void> => {
    const removed: RemovedImage = {
      imageId: a.imageId,
      name: a.name,
      rootDeviceType: a.rootDeviceType,
      alreadyGone: false,
      snapshots: [],
    };
    // Instance-store: read and check the manifest before touching anything, so a missing bucket or a manifest
    // that cannot be trusted leaves the image registered and the bucket as it was.
    let bundle: Awaited<ReturnType<typeof readBundleManifest>> | undefined;
    if (a.rootDeviceType === 'instance-store' && a.keepBundle) removed.bundleKept = true;
    else if (a.rootDeviceType === 'instance-store') {
      try {
        bundle = await readBundleManifest(options.s3, a.imageLocation);
      } catch (error) {
        fail('bundle', a.imageId, error);
        return;
      }
    }
    try {
      const out = await call('destructive', () =>
        options.ec2.send(
          new DeregisterImageCommand({ ImageId: a.imageId, DeleteAssociatedSnapshots: a.rootDeviceType === 'ebs' }),
        ),
      );
      const sizes = new Map(a.snapshots.map((s) => [s.snapshotId, s.sizeGiB]));
      removed.snapshots = (out.DeleteSnapshotResults ?? []).map((r) => ({
        snapshotId: r.SnapshotId ?? '',
        returnCode: r.ReturnCode ?? 'internal-error',
        sizeGiB: sizes.get(r.SnapshotId ?? '') ?? 0,
      }));
      for (const s of removed.snapshots) {
        if (s.returnCode !== 'success' && s.returnCode !== 'skipped') {
          outcome.errors.push({
            step: 'deregister',
            imageId: a.imageId,
            code: `Snapshot.${s.returnCode}`,
            message: `snapshot ${s.snapshotId} was not deleted: ${s.returnCode}`,
          });
        }
      }
    } catch (error) {
      if (!GONE.has((error as { name?: string }).name ?? '')) {
        fail('deregister', a.imageId, error);
        return;
      }
      removed.alreadyGone = true;
    }
    if (bundle) {
      const result: BundleResult = {
        bucket: bundle.location.bucket,
        manifestKey: bundle.location.manifestKey,
        deletedKeys: [],
        ...(bundle.manifest.bundledBytes !== undefined ? { bytes: bundle.manifest.bundledBytes } : {}),
      };
      try {
        const { deletedKeys, calls } = await deleteBundle(options.s3, bundle.location, bundle.manifest);
        outcome.mutatingCalls += calls;
        result.deletedKeys = deletedKeys;
      } catch (error) {
        if (error instanceof BundleDeleteError) result.deletedKeys = error.deletedKeys;
        fail('bundle', a.imageId, error);
      }
      removed.bundle = result;
    }
    outcome.removed.push(removed);
  };

  const run = async <A extends DeprecateAction | DeregisterAction>(
    queue: A[],
    cls: RateClass,
    act: (a: A) => Promise<void>,
  ): Promise<void> => {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < queue.length) {
        if (outcome.stoppedEarly || options.signal?.aborted || !timeFor(cls)) {
          outcome.stoppedEarly = true;
          return;
        }
        const action = queue[next++] as A;
        await act(action);
        options.onProgress?.(++done, total);
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 4, queue.length) }, worker));
    for (const a of queue.slice(next))
      outcome.pending.push({ imageId: a.imageId, action: a.action } satisfies PendingAction);
  };

  // Two buckets, two queues: deprecations never wait behind removals' tokens, nor the other way round.
  await Promise.all([run(deprecations, 'mutating', deprecate), run(removals, 'destructive', deregister)]);
  return outcome;
}

export type { ApplyOutcome, RetentionError };
