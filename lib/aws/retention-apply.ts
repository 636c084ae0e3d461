import {
  DeregisterImageCommand,
  DisableImageDeregistrationProtectionCommand,
  EnableImageDeprecationCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
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
  SnapshotResult,
} from '../domain/retention-report.ts';
import {
  BundleDeleteError,
  deleteBundle,
  readBundleManifest,
  REQUIRED_PERMISSIONS as BUNDLE_PERMISSIONS,
} from './bundles.ts';
import {
  closeBundleJournal,
  REQUIRED_PERMISSIONS as JOURNAL_PERMISSIONS,
  withdrawJournal,
  writeJournal,
} from './journal.ts';
import { isThrottle, TokenBucketPacer, type RateClass } from './pacer.ts';
import { awsErrorName, IMAGE_GONE_ERRORS, isAwsError, isDeadlineError } from '../domain/errors.ts';
import { UNCONFIRMED } from '../domain/retention-report.ts';

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
  'ec2:DisableImageDeregistrationProtection',
  'ec2:DeregisterImage',
  'ec2:DeleteSnapshot',
  ...BUNDLE_PERMISSIONS,
  ...JOURNAL_PERMISSIONS,
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

const MINUTE_MS = 60_000;

export async function applyRetentionPlan(plan: RetentionPlan, options: ApplyOptions): Promise<ApplyOutcome> {
  const deprecations = plan.actions.filter((a): a is DeprecateAction => a.action === 'deprecate');
  const removals = plan.actions.filter((a): a is DeregisterAction => a.action === 'deregister');
  const run = new ApplyRun(options, deprecations.length + removals.length);
  // Two buckets, two queues: deprecations never wait behind removals' tokens, nor the other way round.
  await Promise.all([
    run.work(deprecations, 'mutating', (a) => run.deprecate(a)),
    run.work(removals, 'destructive', (a) => run.remove(a)),
  ]);
  return run.outcome;
}

type Bundle = Awaited<ReturnType<typeof readBundleManifest>>;

/** One apply: its outcome so far, its pacing, and the time it has left. */
class ApplyRun {
  readonly outcome: ApplyOutcome = {
    deprecated: [],
    removed: [],
    errors: [],
    pending: [],
    stoppedEarly: false,
    mutatingCalls: 0,
  };
  private readonly pacer: TokenBucketPacer;
  private readonly now: () => number;
  private readonly deadline: number;
  private readonly baseReserveMs: number;
  private slowestCallMs = 0;
  private done = 0;

  constructor(
    private readonly options: ApplyOptions,
    private readonly total: number,
  ) {
    this.pacer = options.pacer ?? new TokenBucketPacer();
    this.now = this.pacer.now;
    this.deadline = options.deadline ?? Number.POSITIVE_INFINITY;
    this.baseReserveMs = options.reserveMs ?? 2000;
  }

  /** Works through a queue with `concurrency` workers while there is time; what is left goes to `pending`. */
  async work<A extends DeprecateAction | DeregisterAction>(
    queue: A[],
    cls: RateClass,
    act: (a: A) => Promise<void>,
  ): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < queue.length) {
        if (this.outcome.stoppedEarly || this.options.signal?.aborted || !this.timeFor(cls)) {
          this.outcome.stoppedEarly = true;
          return;
        }
        const action = queue[next++] as A;
        await act(action);
        this.options.onProgress?.(++this.done, this.total);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency ?? 4, queue.length) }, worker));
    for (const a of queue.slice(next))
      this.outcome.pending.push({ imageId: a.imageId, action: a.action } satisfies PendingAction);
  }

  async deprecate(a: DeprecateAction): Promise<void> {
    // EnableImageDeprecation refuses times in the past; the plan's `now` may be minutes behind by now.
    const earliest = Math.ceil((this.now() + 1000) / MINUTE_MS) * MINUTE_MS;
    const deprecateAt = new Date(Math.max(Date.parse(a.deprecateAt), earliest)).toISOString();
    const record: DeprecatedImage = { imageId: a.imageId, name: a.name, deprecateAt };
    try {
      await this.call('mutating', () =>
        this.options.ec2.send(
          new EnableImageDeprecationCommand({ ImageId: a.imageId, DeprecateAt: new Date(deprecateAt) }),
        ),
      );
      this.outcome.deprecated.push(record);
    } catch (error) {
      if (isGone(error)) this.outcome.deprecated.push({ ...record, alreadyGone: true });
      else this.fail('deprecate', a.imageId, error);
    }
  }

  /** Removes one image: its bundle's manifest read first, then DeregisterImage, then the bundle. */
  async remove(a: DeregisterAction): Promise<void> {
    const removed: RemovedImage = {
      imageId: a.imageId,
      name: a.name,
      rootDeviceType: a.rootDeviceType,
      alreadyGone: false,
      snapshots: [],
    };
    if (a.rootDeviceType === 'instance-store' && a.keepBundle) removed.bundleKept = true;
    const bundle = await this.readBundle(a);
    if (bundle === null) return;
    // What must go after the image is recorded first (lib/aws/journal.ts): a failure, a kill or a deadline that
    // cuts DeregisterImage in flight leaks nothing: the next run finishes the entry once the image is gone.
    const entry = {
      imageId: a.imageId,
      snapshotIds: a.snapshots.map((s) => s.snapshotId),
      ...(bundle ? { bundle } : {}),
    };
    if (!(await this.journal(a, entry))) return;
    const deregistered = await this.deregister(a, removed);
    if (deregistered !== 'done') {
      if (deregistered === 'refused')
        this.count(await withdrawJournal(this.options.ec2, this.options.s3, entry, this.pacer));
      return;
    }
    if (bundle) {
      removed.bundle = await this.deleteBundle(a, bundle);
      if (removed.bundle.deletedKeys.includes(removed.bundle.manifestKey))
        await this.closeJournal(a, removed.bundle.bucket);
    }
    this.outcome.removed.push(removed);
  }

  /**
   * Instance-store: read and check the manifest before touching anything, so a missing bucket or a manifest that
   * cannot be trusted leaves the image registered and the bucket as it was. Undefined: no bundle to delete; null:
   * the manifest could not be read (an error recorded).
   */
  private async readBundle(a: DeregisterAction): Promise<Bundle | undefined | null> {
    if (a.rootDeviceType !== 'instance-store' || a.keepBundle) return undefined;
    try {
      return await readBundleManifest(this.options.s3, a.imageLocation);
    } catch (error) {
      if (!this.leftAtDeadline('deregister', a.imageId, error, false)) this.fail('bundle', a.imageId, error);
      return null;
    }
  }

  /** Writes the image's journal entry; false (an error recorded, the image left registered) when it could not. */
  private async journal(a: DeregisterAction, entry: Parameters<typeof writeJournal>[2]): Promise<boolean> {
    try {
      this.count(await writeJournal(this.options.ec2, this.options.s3, entry, this.pacer, this.now()));
      return true;
    } catch (error) {
      // Cut by the deadline: nothing was deregistered, the image is left for the next run like any other.
      if (!this.leftAtDeadline('deregister', a.imageId, error, false)) this.fail('journal', a.imageId, error);
      return false;
    }
  }

  /** The bundle is gone: so goes its journal object (if that fails, the next pass finds the bundle gone). */
  private async closeJournal(a: DeregisterAction, bucket: string): Promise<void> {
    try {
      this.count(await closeBundleJournal(this.options.s3, bucket, a.imageId));
    } catch {
      // Harmless: a journal object whose manifest is gone is closed by the next pass without deleting anything.
    }
  }

  /**
   * DeregisterImage (with its EBS snapshots); `failed` (an error recorded), or `refused` when EC2 certainly kept
   * the image (a 4xx answer). An image gone is done.
   */
  private async deregister(a: DeregisterAction, removed: RemovedImage): Promise<'done' | 'refused' | 'failed'> {
    try {
      // The scope releases protection (retention.*.releaseProtection): off first, without cooldown it ends at once.
      if (a.releaseProtection)
        await this.call('destructive', () =>
          this.options.ec2.send(new DisableImageDeregistrationProtectionCommand({ ImageId: a.imageId })),
        );
      const out = await this.call('destructive', () =>
        this.options.ec2.send(
          new DeregisterImageCommand({ ImageId: a.imageId, DeleteAssociatedSnapshots: a.rootDeviceType === 'ebs' }),
        ),
      );
      removed.snapshots = snapshotResults(a, out.DeleteSnapshotResults);
      for (const s of removed.snapshots) {
        if (s.returnCode !== 'success' && s.returnCode !== 'skipped' && s.returnCode !== UNCONFIRMED) {
          this.outcome.errors.push({
            step: 'deregister',
            imageId: a.imageId,
            code: `Snapshot.${s.returnCode}`,
            message: `snapshot ${s.snapshotId} was not deleted: ${s.returnCode}; it stays in the journal`,
          });
        }
      }
    } catch (error) {
      if (!isGone(error)) {
        this.fail('deregister', a.imageId, error);
        return isRefusal(error) ? 'refused' : 'failed';
      }
      removed.alreadyGone = true;
      // Gone already (an earlier run, or someone else): whatever is left of it is in the journal, not here.
    }
    return 'done';
  }

  /** Deletes the parts the manifest lists, then the manifest; what was deleted, even when S3 refused some. */
  private async deleteBundle(a: DeregisterAction, bundle: Bundle): Promise<BundleResult> {
    const result: BundleResult = {
      bucket: bundle.location.bucket,
      manifestKey: bundle.location.manifestKey,
      deletedKeys: [],
      ...(bundle.manifest.bundledBytes !== undefined ? { bytes: bundle.manifest.bundledBytes } : {}),
    };
    try {
      const { deletedKeys, calls } = await deleteBundle(this.options.s3, bundle.location, bundle.manifest);
      this.outcome.mutatingCalls += calls;
      result.deletedKeys = deletedKeys;
    } catch (error) {
      if (error instanceof BundleDeleteError) result.deletedKeys = error.deletedKeys;
      this.fail('bundle', a.imageId, error);
    }
    return result;
  }

  /** Adds calls made elsewhere; after the await, so concurrent workers never overwrite each other's counts. */
  private count(calls: number): void {
    this.outcome.mutatingCalls += calls;
  }

  /** A paced call, counted, with its duration kept for the reserve. */
  private call<T>(cls: RateClass, fn: () => Promise<T>): Promise<T> {
    return this.pacer.call(cls, async () => {
      this.outcome.mutatingCalls++;
      const started = this.now();
      try {
        return await fn();
      } finally {
        this.slowestCallMs = Math.max(this.slowestCallMs, this.now() - started);
      }
    });
  }

  /** Whether there is time to start one more image of this class: its wait for a token plus the reserve. */
  private timeFor(cls: RateClass): boolean {
    // An image takes up to five calls (GetObject, journal, DeregisterImage, DeleteObjects, journal); keep time for each.
    const reserve = Math.max(this.baseReserveMs, 5 * 2 * this.slowestCallMs);
    return this.now() + this.pacer.delay(cls) + reserve <= this.deadline;
  }

  /**
   * The deadline cut this image's call (or its wait for a token) before the image was deregistered: stop, and
   * leave the image to the next run, which plans it again or finds it gone (and then finishes its journal entry:
   * snapshots and bundle). A deprecation or deregistration cut in flight may still have happened (`interrupted`). A
   * bundle's deletion cut short is an error to see instead (its journal entry is finished by the next run).
   */
  private leftAtDeadline(action: 'deprecate' | 'deregister', imageId: string, error: unknown, sent: boolean): boolean {
    if (!isDeadlineError(error)) return false;
    this.outcome.stoppedEarly = true;
    const interrupted = sent && awsErrorName(error) === 'AbortError';
    this.outcome.pending.push({ imageId, action, ...(interrupted ? { interrupted } : {}) });
    return true;
  }

  private fail(step: RetentionStep, imageId: string, error: unknown): void {
    if ((step === 'deprecate' || step === 'deregister') && this.leftAtDeadline(step, imageId, error, true)) return;
    const message = (error as { message?: string } | undefined)?.message;
    this.outcome.errors.push({
      step,
      imageId,
      code: awsErrorName(error) ?? 'Error',
      message: message ?? String(error),
    });
  }
}

const isGone = (error: unknown): boolean => isAwsError(error, ...IMAGE_GONE_ERRORS);

/** A 4xx answer other than throttling: EC2 refused, the image is certainly still registered. */
function isRefusal(error: unknown): boolean {
  const status = (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
  return status !== undefined && status >= 400 && status < 500 && !isThrottle(error);
}

/**
 * DeregisterImage's per-snapshot results, with the sizes the plan expected. A planned snapshot it does not report
 * on is `unconfirmed`: not counted as freed, left to the journal.
 */
function snapshotResults(
  a: DeregisterAction,
  results: readonly { SnapshotId?: string; ReturnCode?: string }[] | undefined,
): SnapshotResult[] {
  const sizes = new Map(a.snapshots.map((s) => [s.snapshotId, s.sizeGiB]));
  const reported: SnapshotResult[] = (results ?? []).map((r) => ({
    snapshotId: r.SnapshotId ?? '',
    returnCode: r.ReturnCode ?? 'internal-error',
    sizeGiB: sizes.get(r.SnapshotId ?? '') ?? 0,
  }));
  const seen = new Set(reported.map((r) => r.snapshotId));
  const missing = a.snapshots
    .filter((s) => !seen.has(s.snapshotId))
    .map((s): SnapshotResult => ({ snapshotId: s.snapshotId, returnCode: UNCONFIRMED, sizeGiB: s.sizeGiB }));
  return [...reported, ...missing];
}

export type { ApplyOutcome, RetentionError };
