import * as z from 'zod';

/**
 * The documents the replication state machine passes between its tasks. Each task handler parses its input with
 * these schemas (a task fed something else fails loudly rather than guessing), and the local runtime uses the
 * same schemas, so the contract between statemachines/replicate.asl.json and the code is checked in one place.
 */

const region = z.string().min(1);
const imageId = z.string().regex(/^ami-[0-9a-f]{8,17}$/, 'is not an image id');
const isoTime = z.string().min(1);
/** A member account owning the source (organization reach); absent: the deployment's own account. */
const account = z
  .string()
  .regex(/^\d{12}$/, 'is not a 12-digit account id')
  .optional();

/**
 * The copy-slot queue's safety net: a parked StartCopy retries by itself after `timeoutSeconds` (the WaitForSlot
 * state's TimeoutSeconds in statemachines/replicate.asl.json) if no copy's end woke it, and a branch parks at most
 * `maxParks` times, after which the quota refusal fails the region (reconciliation re-drives it later).
 */
export const SLOT_WAIT = { timeoutSeconds: 1800, maxParks: 16 } as const;

export const targetSchema = z.object({
  region,
  kmsKeyId: z.string().min(1),
  /** A DR account that owns the copy, and the role ami-dr assumes there (absent: ami-dr's own account). */
  account: z
    .string()
    .regex(/^\d{12}$/)
    .optional(),
  roleArn: z.string().min(1).optional(),
});
export type Target = z.infer<typeof targetSchema>;

/** The execution's input: deterministic for (source region, image, policy), so duplicate events are the same request. */
export const replicationInputSchema = z.object({
  source: z.object({ region, imageId, account }),
  policyVersion: z.string().min(1),
  targets: z.array(targetSchema).min(1),
  maxConcurrency: z.number().int().min(1).max(40),
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
  public: z.boolean().default(false),
});
export type SourceSummary = z.infer<typeof sourceSummarySchema>;

/** CheckSource's verdict: `ready` ⇒ replicate, `wait` ⇒ check again after `waitSeconds`, `stop` ⇒ end cleanly with `reason`. */
export const sourceCheckSchema = z.object({
  verdict: z.enum(['ready', 'wait', 'stop']),
  state: z.string(),
  checks: z.number().int().nonnegative(),
  firstCheckedAt: isoTime,
  waitSeconds: z.number().int().min(1),
  /** When the next check is due, if the verdict is `wait`. */
  nextCheckAt: isoTime,
  reason: z.string().optional(),
  image: sourceSummarySchema.optional(),
});
export type SourceCheck = z.infer<typeof sourceCheckSchema>;

export const checkSourceInputSchema = z.object({
  source: z.object({ region, imageId, account }),
  /** The previous check, on later turns of the wait loop. */
  check: sourceCheckSchema.optional(),
});
export type CheckSourceInput = z.infer<typeof checkSourceInputSchema>;

/** One branch of the Map: a source going to one DR region. */
export const branchInputSchema = z.object({
  source: sourceSummarySchema,
  target: targetSchema,
  /** The execution's name (`$$.Execution.Name`): scopes StartCopy's ClientToken to this execution. */
  execution: z.string().min(1).optional(),
  /** How often this branch parked in the copy-slot queue so far (StartCopy; absent: never). */
  parks: z.number().int().min(0).optional(),
});
export type BranchInput = z.infer<typeof branchInputSchema>;

export const copyStatusSchema = z.object({
  imageId,
  region,
  /** The DR account that owns the copy (absent: ami-dr's own). */
  account: z.string().optional(),
  /** Found by provenance tags (or by name) rather than made by this call. */
  adopted: z.boolean(),
  encrypted: z.boolean(),
  kmsKeyId: z.string().optional(),
  /** Why the copy is not what the policy asked for (instance-store: not re-encrypted). */
  note: z.string().optional(),
  startedAt: isoTime,
  deadline: isoTime,
  checks: z.number().int().nonnegative(),
  /** 0 when an adopted copy is already available. */
  waitSeconds: z.number().int().min(0),
  /** When the next check is due (informative on AWS; the local runtime's clock follows it). */
  nextCheckAt: isoTime,
  state: z.string(),
  reason: z.string().optional(),
  pastDeadline: z.boolean(),
  availableAt: isoTime.optional(),
});
export type CopyStatus = z.infer<typeof copyStatusSchema>;

export const copyStepInputSchema = branchInputSchema.extend({ copy: copyStatusSchema });
export type CopyStepInput = z.infer<typeof copyStepInputSchema>;

/** WaitForCopy's payload: the copy and the task token to complete when it is done. */
export const awaitCopyInputSchema = copyStepInputSchema.extend({ token: z.string().min(1).max(2048) });
export type AwaitCopyInput = z.infer<typeof awaitCopyInputSchema>;

/** The copy-slot queue's steps: the branch, when its execution started (the queue's order) and this park's number. */
export const slotQueueStepSchema = branchInputSchema.extend({
  execution: z.string().min(1),
  /** `$$.Execution.StartTime` (the Map item's `since`): waiters are served in the order their executions started. */
  since: z.string().min(1),
  parks: z.number().int().min(1),
});

/** WaitForSlot's payload: parks the task token. */
export const awaitSlotInputSchema = slotQueueStepSchema.extend({ token: z.string().min(1).max(2048) });

/** SlotWaitEnded's input: the wait timed out (or failed), the branch leaves the queue. */
export const leaveSlotQueueInputSchema = slotQueueStepSchema.extend({ leave: z.literal(true) });

/** Cleanup is reached from any failure, so the copy may be unknown; the caught error comes along. */
export const cleanupInputSchema = branchInputSchema.extend({
  copy: copyStatusSchema.optional(),
  error: z.object({ Error: z.string(), Cause: z.string().optional() }).optional(),
});
export type CleanupInput = z.infer<typeof cleanupInputSchema>;

export const regionResultSchema = z.object({
  region,
  /** The DR account the copy is in (absent: ami-dr's own). */
  account: z.string().optional(),
  status: z.enum(['available', 'failed']),
  imageId: z.string().optional(),
  adopted: z.boolean().optional(),
  encrypted: z.boolean().optional(),
  kmsKeyId: z.string().optional(),
  note: z.string().optional(),
  /** Failures: the error name (`CopyFailedError`, `CopyTimedOutError`, an EC2 code, ...) and why. */
  error: z.string().optional(),
  reason: z.string().optional(),
  startedAt: isoTime.optional(),
  availableAt: isoTime.optional(),
  /** From the source's creation to the copy being available. */
  lagSeconds: z.number().optional(),
  checks: z.number().int().optional(),
  /** What finalize applied. */
  applied: z
    .object({
      tags: z.number().int(),
      droppedTags: z.array(z.string()),
      launchPermissions: z.number().int(),
      snapshotPermissions: z.number().int(),
      /** Accounts given a grant on the DR key (replication.keyAccess grant). */
      keyGrants: z.number().int().optional(),
      deprecationTime: z.string().optional(),
      deregistrationProtection: z.boolean(),
      /** A DR-account copy was sealed: the production account's role may no longer change it. */
      sealed: z.boolean().optional(),
    })
    .optional(),
  /** What cleanup removed. */
  cleanup: z
    .object({
      deregistered: z.array(z.string()),
      snapshotsDeleted: z.array(z.string()),
      problems: z.array(z.string()),
    })
    .optional(),
});
export type RegionResult = z.infer<typeof regionResultSchema>;

export const summarizeInputSchema = z.object({
  source: z.object({ region, imageId, account }),
  image: sourceSummarySchema.optional(),
  results: z.array(regionResultSchema),
  /** Set when the Map itself failed (never expected: every branch catches its own errors). */
  error: z.object({ Error: z.string(), Cause: z.string().optional() }).optional(),
});
export type SummarizeInput = z.infer<typeof summarizeInputSchema>;

export const summarySchema = z.object({
  source: z.object({ region, imageId, account }),
  /** DR accounts the source was shared with for the copy, and whether the share was taken back. */
  shares: z
    .array(
      z.object({
        account: z.string(),
        removed: z.boolean(),
        grantsRevoked: z.number().int(),
        error: z.string().optional(),
      }),
    )
    .optional(),
  outcome: z.enum(['replicated', 'partial', 'failed']),
  succeeded: z.number().int(),
  failed: z.number().int(),
  maxLagSeconds: z.number().optional(),
  regions: z.array(regionResultSchema),
  notified: z.boolean(),
});
export type Summary = z.infer<typeof summarySchema>;

/** Parses a task's input with its schema; a mismatch is a `StepInputError` (a contract bug, not a transient one). */
export class StepInputError extends Error {
  override name = 'StepInputError';
}

export function parseStep<T>(schema: z.ZodType<T>, input: unknown, step: string): T {
  const result = schema.safeParse(input);
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
