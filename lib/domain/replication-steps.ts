// zod/mini: the same checks as zod's chained API, a fraction of its load time (the copy-slot queue's awaitSlot is a
// small function whose cold start these schemas would otherwise dominate).
import * as z from 'zod/mini';

/**
 * The documents the replication state machine passes between its tasks. Each task handler parses its input with
 * these schemas (a task fed something else fails loudly rather than guessing), and the local runtime uses the
 * same schemas, so the contract between statemachines/replicate.asl.json and the code is checked in one place.
 */

const nonEmpty = () => z.string().check(z.minLength(1));
const region = nonEmpty();
const imageId = z.string().check(z.regex(/^ami-[0-9a-f]{8,17}$/, 'is not an image id'));
const isoTime = nonEmpty();
/** A member account owning the source (organization reach); absent: the deployment's own account. */
const account = z.optional(z.string().check(z.regex(/^\d{12}$/, 'is not a 12-digit account id')));

/**
 * The copy-slot queue's safety net: a parked StartCopy retries by itself after `timeoutSeconds` (the WaitForSlot
 * state's TimeoutSeconds in statemachines/replicate.asl.json) if no copy's end woke it, and a branch parks at most
 * `maxParks` times, after which the quota refusal fails the region (reconciliation re-drives it later).
 */
export const SLOT_WAIT = { timeoutSeconds: 1800, maxParks: 16 } as const;

export const targetSchema = z.object({
  region,
  kmsKeyId: nonEmpty(),
  /** A DR account that owns the copy, and the role ami-dr assumes there (absent: ami-dr's own account). */
  account: z.optional(z.string().check(z.regex(/^\d{12}$/))),
  roleArn: z.optional(nonEmpty()),
});
export type Target = z.infer<typeof targetSchema>;

/** The execution's input: deterministic for (source region, image, policy), so duplicate events are the same request. */
export const replicationInputSchema = z.object({
  source: z.object({ region, imageId, account }),
  policyVersion: nonEmpty(),
  targets: z.array(targetSchema).check(z.minLength(1)),
  maxConcurrency: z.int().check(z.minimum(1), z.maximum(40)),
});
export type ReplicationInput = z.infer<typeof replicationInputSchema>;

/** What later steps need to know of the source (a subset of DescribeImages, fixed once it is `available`). */
export const sourceSummarySchema = z.object({
  account,
  imageId,
  region,
  name: z.string(),
  creationDate: z.string(),
  rootDeviceType: z.enum(['ebs', 'instance-store']),
  encrypted: z.boolean(),
  /** Shared with everyone (Group=all): its encrypted copy could not be, so it is refused before copying. */
  public: z._default(z.boolean(), false),
});
export type SourceSummary = z.infer<typeof sourceSummarySchema>;

/** CheckSource's verdict: `ready` ⇒ replicate, `wait` ⇒ check again after `waitSeconds`, `stop` ⇒ end cleanly with `reason`. */
export const sourceCheckSchema = z.object({
  verdict: z.enum(['ready', 'wait', 'stop']),
  state: z.string(),
  checks: z.int().check(z.nonnegative()),
  firstCheckedAt: isoTime,
  waitSeconds: z.int().check(z.minimum(1)),
  /** When the next check is due, if the verdict is `wait`. */
  nextCheckAt: isoTime,
  reason: z.optional(z.string()),
  image: z.optional(sourceSummarySchema),
});
export type SourceCheck = z.infer<typeof sourceCheckSchema>;

export const checkSourceInputSchema = z.object({
  source: z.object({ region, imageId, account }),
  /** The previous check, on later turns of the wait loop. */
  check: z.optional(sourceCheckSchema),
});
export type CheckSourceInput = z.infer<typeof checkSourceInputSchema>;

/** One branch of the Map: a source going to one DR region. */
export const branchInputSchema = z.object({
  source: sourceSummarySchema,
  target: targetSchema,
  /** The execution's name (`$$.Execution.Name`): scopes StartCopy's ClientToken to this execution. */
  execution: z.optional(nonEmpty()),
  /** How often this branch parked in the copy-slot queue so far (StartCopy; absent: never). */
  parks: z.optional(z.int().check(z.minimum(0))),
});
export type BranchInput = z.infer<typeof branchInputSchema>;

export const copyStatusSchema = z.object({
  imageId,
  region,
  /** The DR account that owns the copy (absent: ami-dr's own). */
  account: z.optional(z.string()),
  /** Found by provenance tags (or by name) rather than made by this call. */
  adopted: z.boolean(),
  encrypted: z.boolean(),
  kmsKeyId: z.optional(z.string()),
  /** Why the copy is not what the policy asked for (instance-store: not re-encrypted). */
  note: z.optional(z.string()),
  startedAt: isoTime,
  deadline: isoTime,
  checks: z.int().check(z.nonnegative()),
  /** 0 when an adopted copy is already available. */
  waitSeconds: z.int().check(z.minimum(0)),
  /** When the next check is due (informative on AWS; the local runtime's clock follows it). */
  nextCheckAt: isoTime,
  state: z.string(),
  reason: z.optional(z.string()),
  pastDeadline: z.boolean(),
  availableAt: z.optional(isoTime),
});
export type CopyStatus = z.infer<typeof copyStatusSchema>;

export const copyStepInputSchema = z.extend(branchInputSchema, { copy: copyStatusSchema });
export type CopyStepInput = z.infer<typeof copyStepInputSchema>;

/** WaitForCopy's payload: the copy and the task token to complete when it is done. */
export const awaitCopyInputSchema = z.extend(copyStepInputSchema, {
  token: z.string().check(z.minLength(1), z.maxLength(2048)),
});
export type AwaitCopyInput = z.infer<typeof awaitCopyInputSchema>;

/** The copy-slot queue's steps: the branch, when its execution started (the queue's order) and this park's number. */
export const slotQueueStepSchema = z.extend(branchInputSchema, {
  execution: nonEmpty(),
  /** `$$.Execution.StartTime` (the Map item's `since`): waiters are served in the order their executions started. */
  since: nonEmpty(),
  parks: z.int().check(z.minimum(1)),
});

/** WaitForSlot's payload: parks the task token. */
export const awaitSlotInputSchema = z.extend(slotQueueStepSchema, {
  token: z.string().check(z.minLength(1), z.maxLength(2048)),
});

/** SlotWaitEnded's input: the wait timed out (or failed), the branch leaves the queue. */
export const leaveSlotQueueInputSchema = z.extend(slotQueueStepSchema, { leave: z.literal(true) });

/** Cleanup is reached from any failure, so the copy may be unknown; the caught error comes along. */
export const cleanupInputSchema = z.extend(branchInputSchema, {
  copy: z.optional(copyStatusSchema),
  error: z.optional(z.object({ Error: z.string(), Cause: z.optional(z.string()) })),
});
export type CleanupInput = z.infer<typeof cleanupInputSchema>;

export const regionResultSchema = z.object({
  region,
  /** The DR account the copy is in (absent: ami-dr's own). */
  account: z.optional(z.string()),
  status: z.enum(['available', 'failed']),
  imageId: z.optional(z.string()),
  adopted: z.optional(z.boolean()),
  encrypted: z.optional(z.boolean()),
  kmsKeyId: z.optional(z.string()),
  note: z.optional(z.string()),
  /** Failures: the error name (`CopyFailedError`, `CopyTimedOutError`, an EC2 code, ...) and why. */
  error: z.optional(z.string()),
  reason: z.optional(z.string()),
  startedAt: z.optional(isoTime),
  availableAt: z.optional(isoTime),
  /** From the source's creation to the copy being available. */
  lagSeconds: z.optional(z.number()),
  checks: z.optional(z.int()),
  /** What finalize applied. */
  applied: z.optional(
    z.object({
      tags: z.int(),
      droppedTags: z.array(z.string()),
      launchPermissions: z.int(),
      snapshotPermissions: z.int(),
      /** Accounts given a grant on the DR key (replication.keyAccess grant). */
      keyGrants: z.optional(z.int()),
      deprecationTime: z.optional(z.string()),
      deregistrationProtection: z.boolean(),
      /** A DR-account copy was sealed: the production account's role may no longer change it. */
      sealed: z.optional(z.boolean()),
    }),
  ),
  /** What cleanup removed. */
  cleanup: z.optional(
    z.object({
      deregistered: z.array(z.string()),
      snapshotsDeleted: z.array(z.string()),
      problems: z.array(z.string()),
    }),
  ),
});
export type RegionResult = z.infer<typeof regionResultSchema>;

export const summarizeInputSchema = z.object({
  source: z.object({ region, imageId, account }),
  image: z.optional(sourceSummarySchema),
  results: z.array(regionResultSchema),
  /** Set when the Map itself failed (never expected: every branch catches its own errors). */
  error: z.optional(z.object({ Error: z.string(), Cause: z.optional(z.string()) })),
});
export type SummarizeInput = z.infer<typeof summarizeInputSchema>;

export const summarySchema = z.object({
  source: z.object({ region, imageId, account }),
  /** DR accounts the source was shared with for the copy, and whether the share was taken back. */
  shares: z.optional(
    z.array(
      z.object({
        account: z.string(),
        removed: z.boolean(),
        grantsRevoked: z.int(),
        error: z.optional(z.string()),
      }),
    ),
  ),
  outcome: z.enum(['replicated', 'partial', 'failed']),
  succeeded: z.int(),
  failed: z.int(),
  maxLagSeconds: z.optional(z.number()),
  regions: z.array(regionResultSchema),
  notified: z.boolean(),
});
export type Summary = z.infer<typeof summarySchema>;

/** Parses a task's input with its schema; a mismatch is a `StepInputError` (a contract bug, not a transient one). */
export class StepInputError extends Error {
  override name = 'StepInputError';
}

export function parseStep<S extends z.core.$ZodType>(schema: S, input: unknown, step: string): z.output<S> {
  const result = z.safeParse(schema, input);
  if (!result.success) {
    throw new StepInputError(
      `${step} input: ${result.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`).join('; ')}`,
      {
        cause: result.error,
      },
    );
  }
  return result.data;
}
