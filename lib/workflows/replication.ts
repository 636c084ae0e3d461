import { DrAccountAccessError } from '../aws/assume-role.ts';
import { type Clients, dynamoDbClient, ec2Client, kmsClient, sfnClient, snsClient } from '../aws/clients.ts';
import { putCopyWait, takeCopyWait } from '../aws/copy-waits.ts';
import {
  copyImage,
  deleteLeftoverSnapshots,
  describeImage,
  findCopies,
  findImagesByName,
  removeCopy,
  type RemovalReport,
} from '../aws/copy.ts';
import { describeSnapshotKeys } from '../aws/images.ts';
import { grantKeyToConsumers } from '../aws/key-access.ts';
import { publishNotification, topicRegion } from '../aws/notify.ts';
import {
  addLaunchPermissions,
  getLaunchPermissions,
  protectFromDeregistration,
  setDeprecation,
  shareSnapshots,
  tagResources,
  untagResources,
} from '../aws/permissions.ts';
import { executionArnOf, findExecution, sendTaskSuccess, startExecution } from '../aws/sfn.ts';
import { ADOPTABLE_STATES, GONE_STATES, type ImageRecord } from '../domain/image.ts';
import { parseImageEvent } from '../domain/image-event.ts';
import { drRegion, keyAccessMode, policyVersion, type Policy } from '../domain/policy.ts';
import {
  copyClientToken,
  copyDeadline,
  copyName,
  copyTags,
  CopyQuotaFullError,
  deprecationFor,
  executionName,
  fallbackWaitSeconds,
  launchPermissionsFor,
  nextWaitSeconds,
  PublicEncryptedImageError,
  publicSourceRefusal,
  screenEvent,
  screenImage,
  type SkipReason,
} from '../domain/replication.ts';
import { releaseCopySlot } from './copy-queue.ts';
import {
  awaitCopyInputSchema,
  cleanupInputSchema,
  SLOT_WAIT,
  copyStatusSchema,
  copyStepInputSchema,
  branchInputSchema,
  type BranchInput,
  checkSourceInputSchema,
  parseStep,
  summarizeInputSchema,
  type CopyStatus,
  type RegionResult,
  type ReplicationInput,
  type SourceCheck,
  type SourceSummary,
  type Summary,
  type Target,
} from '../domain/replication-steps.ts';
import { isReplica, TAG } from '../domain/tags.ts';
import { drRoleArn, protectionFor } from '../domain/dr-account.ts';
import { shareWithDrAccount, targetClients, unshareFromDrAccounts } from './dr-account.ts';
import { logger, metrics as powertoolsMetrics, METRIC, MetricUnit } from '../observability.ts';
import { isAwsError } from '../domain/errors.ts';
import { DEFAULT_MEMBER_ROLE } from '../domain/organization.ts';
import type { ClientsFor } from '../aws/member-clients.ts';

/**
 * The replication's steps, one function per Lambda of the state machine plus the event handler. Handlers, the CLI
 * and the local runtime all call these with their own clients, policy and clock.
 */

type Unit = (typeof MetricUnit)[keyof typeof MetricUnit];

export interface MetricSink {
  addMetric(name: string, unit: Unit, value: number): void;
  publishStoredMetrics(): void;
}

export interface LogSink {
  info(message: string, ...data: Record<string, unknown>[]): void;
  warn(message: string, ...data: Record<string, unknown>[]): void;
}

export interface ReplicationDeps {
  /** The deployment's own account's clients (Step Functions, DynamoDB, SNS always; EC2 for its own images). */
  clients: Clients;
  /**
   * A member account's clients (its ami-dr-member role), for executions whose source names an account: their
   * EC2 calls are made in that account, so copies stay in the account owning the source.
   */
  clientsFor?: ClientsFor;
  policy: Readonly<Policy>;
  /** The time (the local runtime passes the twin's clock); defaults to real time. */
  now?: () => Date;
  metrics?: MetricSink;
  log?: LogSink;
  /**
   * The copy-slot queue's table (lib/workflows/copy-queue.ts): finalize and cleanup hand the slot their copy frees
   * to the oldest waiter. Without it nobody is woken, and parked copies retry on their WaitForSlot timeout.
   */
  queueTable?: string;
}

export interface EventDeps extends ReplicationDeps {
  /** The account ami-dr runs in; events and images of other accounts are not acted on. */
  accountId: string;
  stateMachineArn: string;
  /** ARN prefix of ami-dr's own roles: calls they made are ami-dr's own copies. */
  roleArnPrefix?: string;
  /**
   * Is this a member account whose forwarded events are acted on (organization reach, with `clientsFor`)? An
   * event of any other account is skipped as before.
   */
  isMember?: (account: string) => boolean;
  /** The role ami-dr works under in a member (its sessions' calls are ami-dr's own there); default ami-dr-member. */
  memberRoleName?: string;
}

/** The clients of the account owning an execution's source: the deployment's own, or a member's. */
async function clientsOf(deps: ReplicationDeps, account: string | undefined): Promise<Clients> {
  if (!account) return deps.clients;
  if (!deps.clientsFor) throw new Error(`source in account ${account}, but no member clients are configured`);
  return deps.clientsFor(account);
}

/**
 * The clients that reach a target's copy: the source owner's (ami-dr's own, or a member's), or, for a DR account's
 * target, its replicator role's session assumed from the owner's.
 */
async function copyClients(
  deps: ReplicationDeps,
  source: { account?: string | undefined },
  target: Target,
): Promise<Clients> {
  return targetClients({ ...deps, clients: await clientsOf(deps, source.account) }, target);
}

// Literal names: a minified bundle renames classes, and these names are reported and matched.
const COPY_FAILED = 'CopyFailedError';
const COPY_TIMED_OUT = 'CopyTimedOutError';

/** A copy that failed or could not be made; its name is what a region's result reports. */
export class CopyFailedError extends Error {
  override name = COPY_FAILED;
}
/** A copy still pending at its deadline (reported by name in the region's result; cleanup removes the copy). */
export class CopyTimedOutError extends Error {
  override name = COPY_TIMED_OUT;
}

const nowOf = (deps: ReplicationDeps) => (deps.now ? deps.now() : new Date());
const logOf = (deps: ReplicationDeps): LogSink => deps.log ?? logger;

// ---- starting a replication --------------------------------------------------------------------------------------

/** The execution one image's replication runs as: its deterministic name and input. */
export function replicationRequest(
  policy: Policy,
  region: string,
  imageId: string,
  attempt = 0,
  account?: string,
): { name: string; input: ReplicationInput } {
  const version = policyVersion(policy);
  return {
    name: executionName(region, imageId, version, attempt),
    input: {
      source: { region, imageId, ...(account ? { account } : {}) },
      policyVersion: version,
      targets: policy.regions.dr
        .filter((d) => d.region !== region)
        .map((d) => ({
          region: d.region,
          kmsKeyId: d.kmsKeyId,
          ...(d.account ? { account: d.account, roleArn: drRoleArn(d) } : {}),
        })),
      maxConcurrency: policy.replication.maxConcurrentRegions,
    },
  };
}

/** A source whose replication ended this many times without leaving it ready needs a person, not another run. */
export const MAX_REDRIVE_ATTEMPTS = 5;
/** Re-drive n waits this long after attempt n−1 ended, doubling per attempt (15 min, 30 min, 1 h, 2 h), at most the cap. */
export const REDRIVE_BACKOFF_MS = 15 * 60_000;
export const REDRIVE_BACKOFF_CAP_MS = 6 * 3_600_000;

export const redriveBackoffMs = (attempt: number): number =>
  Math.min(REDRIVE_BACKOFF_MS * 2 ** Math.max(0, attempt - 1), REDRIVE_BACKOFF_CAP_MS);

export interface StartedReplication {
  executionName: string;
  executionArn: string;
  /**
   * `started`: a new execution; `joined`: one of that name exists, so nothing new was started; `backing-off`: the
   * last attempt ended too recently for the next (`retryAt`), which a later run starts.
   */
  result: 'started' | 'joined' | 'backing-off';
  retryAt?: string;
}

export interface StartOptions {
  /**
   * Reconciliation and the CLI: when the execution of that name has ended and the caller still finds the image not
   * ready, start a numbered re-drive (attempt 1, 2, ...), deterministic too, so two callers seeing the same gap start
   * one execution, not two.
   */
  redrive?: boolean;
  /**
   * With `redrive`: milliseconds since the epoch, to back off across runs. The next attempt waits
   * `redriveBackoffMs(attempt)` after the previous one ended; the executions' stop times are the record.
   */
  backoffNow?: number;
  /** A member account owning the image (organization reach): the execution works in that account. */
  account?: string;
}

/**
 * Starts the replication of one image under its deterministic execution name, or joins the execution of that name.
 * Every caller goes through here: the event handler (a duplicate event joins, whatever that execution's state),
 * reconciliation (re-drives with back-off) and the CLI (re-drives at once: a person asked).
 */
export async function startOrJoinReplication(
  deps: Pick<EventDeps, 'clients' | 'policy' | 'stateMachineArn'>,
  region: string,
  imageId: string,
  options: StartOptions = {},
): Promise<StartedReplication> {
  const sfn = sfnClient(deps.clients, deps.stateMachineArn.split(':')[3] || region);
  const attempts = options.redrive ? MAX_REDRIVE_ATTEMPTS : 1;
  let ended: { name: string; executionArn: string; stopDate?: Date } | undefined;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const { name, input } = replicationRequest(deps.policy, region, imageId, attempt, options.account);
    const executionArn = executionArnOf(deps.stateMachineArn, name);
    if (options.redrive) {
      // Looked up first: StartExecution of a running name succeeds too (it returns the original), so only this tells joining from starting.
      const execution = await findExecution(sfn, executionArn);
      if (execution?.status === 'RUNNING' || execution?.status === 'PENDING_REDRIVE')
        return { executionName: name, executionArn, result: 'joined' };
      if (execution) {
        ended = { name, executionArn, stopDate: execution.stopDate };
        continue;
      }
      const retryAt =
        ended?.stopDate && options.backoffNow !== undefined ? ended.stopDate.getTime() + redriveBackoffMs(attempt) : 0;
      if (ended && options.backoffNow !== undefined && retryAt > options.backoffNow)
        return {
          executionName: ended.name,
          executionArn: ended.executionArn,
          result: 'backing-off',
          retryAt: new Date(retryAt).toISOString(),
        };
    }
    const started = await startExecution(sfn, deps.stateMachineArn, name, input);
    return {
      executionName: name,
      executionArn: started.executionArn,
      result: started.alreadyStarted ? 'joined' : 'started',
    };
  }
  throw new Error(
    `replication of ${imageId} ended ${MAX_REDRIVE_ATTEMPTS} times without making it ready; see its executions`,
  );
}

export type EventOutcome =
  | { action: 'skipped'; reason: SkipReason; detail: string; region: string; imageId?: string; eventId: string }
  | ({ action: 'started' | 'already-started'; region: string; imageId: string; eventId: string } & Omit<
      StartedReplication,
      'result'
    >);

/**
 * The EventBridge handler's logic: parse (a malformed event throws `MalformedEventError`), drop what must not be
 * replicated (saying why), else start the replication.
 */
export async function handleImageEvent(raw: unknown, deps: EventDeps): Promise<EventOutcome> {
  const event = parseImageEvent(raw);
  const log = logOf(deps);
  // A member's event (forwarded to this bus by the member template's rule) is screened as that account's own.
  const member = event.account !== deps.accountId && deps.isMember?.(event.account) ? event.account : undefined;
  const ctx = member
    ? {
        policy: deps.policy,
        accountId: member,
        roleArnPrefix: `arn:aws:sts::${member}:assumed-role/${deps.memberRoleName ?? DEFAULT_MEMBER_ROLE}/`,
      }
    : { policy: deps.policy, accountId: deps.accountId, roleArnPrefix: deps.roleArnPrefix };
  const skipped = (reason: SkipReason, detail: string): EventOutcome => {
    log.info('event not acted on', {
      reason,
      detail,
      eventId: event.id,
      eventName: event.eventName ?? event.kind,
      imageId: event.imageId,
      region: event.region,
    });
    return {
      action: 'skipped',
      reason,
      detail,
      region: event.region,
      eventId: event.id,
      ...(event.imageId ? { imageId: event.imageId } : {}),
    };
  };
  const first = screenEvent(event, ctx);
  if (!first.act) return skipped(first.reason, first.detail);
  const imageId = event.imageId as string;
  const owner = await clientsOf(deps, member);
  const image = await describeImage(ec2Client(owner, event.region), event.region, imageId);
  const second = screenImage(image, ctx);
  if (!second.act) return skipped(second.reason, second.detail);
  const { name, input } = replicationRequest(deps.policy, event.region, imageId);
  if (input.targets.length === 0) return skipped('not-a-source-region', `no DR region other than ${event.region}`);
  const started = await startOrJoinReplication(deps, event.region, imageId, member ? { account: member } : {});
  const joined = started.result === 'joined';
  log.info(joined ? 'replication already started' : 'replication started', {
    imageId,
    region: event.region,
    executionName: name,
  });
  return {
    action: joined ? 'already-started' : 'started',
    region: event.region,
    imageId,
    eventId: event.id,
    executionName: started.executionName,
    executionArn: started.executionArn,
  };
}

// ---- CheckSource ----------------------------------------------------------------------------------------------------

function summarizeSource(image: ImageRecord): SourceSummary {
  return {
    imageId: image.imageId,
    region: image.region,
    name: image.name,
    creationDate: image.creationDate,
    rootDeviceType: image.rootDeviceType,
    encrypted: image.snapshots.some((s) => s.encrypted === true),
    public: image.public,
  };
}

/**
 * Is the source ready to copy? `available` ⇒ ready; `pending` ⇒ wait (growing interval) until the policy's
 * deadline; gone, failed or disabled ⇒ stop, with the reason.
 */
export async function checkSource(rawInput: unknown, deps: ReplicationDeps): Promise<SourceCheck> {
  const input = parseStep(checkSourceInputSchema, rawInput, 'CheckSource');
  const now = nowOf(deps);
  const { region, imageId } = input.source;
  const checks = (input.check?.checks ?? 0) + 1;
  const firstCheckedAt = input.check?.firstCheckedAt ?? now.toISOString();
  const deadline = copyDeadline(new Date(firstCheckedAt), deps.policy);
  const owner = await clientsOf(deps, input.source.account);
  const image = await describeImage(ec2Client(owner, region), region, imageId);
  const waitSeconds = nextWaitSeconds(checks - 1, now, deadline);
  const base = {
    checks,
    firstCheckedAt,
    waitSeconds,
    nextCheckAt: new Date(now.getTime() + waitSeconds * 1000).toISOString(),
  };
  if (!image)
    return { ...base, verdict: 'stop', state: 'not-found', reason: `source ${imageId} no longer exists in ${region}` };
  if (image.state === 'available')
    return {
      ...base,
      verdict: 'ready',
      state: image.state,
      image: { ...summarizeSource(image), ...(input.source.account ? { account: input.source.account } : {}) },
    };
  if (GONE_STATES.has(image.state)) {
    return {
      ...base,
      verdict: 'stop',
      state: image.state,
      reason: `source ${imageId} is ${image.state}${image.stateReason ? `: ${image.stateReason}` : ''}`,
    };
  }
  if (now.getTime() >= deadline.getTime()) {
    return {
      ...base,
      verdict: 'stop',
      state: image.state,
      reason: `source ${imageId} still ${image.state} after ${deps.policy.replication.deadlineHours} h`,
    };
  }
  return { ...base, verdict: 'wait', state: image.state };
}

// ---- StartCopy ------------------------------------------------------------------------------------------------------

/** Attempts with a fresh ClientToken when the token's earlier copy is dead (failed and cleaned up by a past run). */
const TOKEN_VARIANTS = 3;

/**
 * Starts the copy in the target region, or adopts one that exists: first by provenance tags (pending included),
 * then by ClientToken (a retried task gets its own copy back), then by name on `InvalidAMIName.Duplicate`.
 * EBS sources are re-encrypted under the region's key; instance-store sources cannot be, and the result says so.
 */
export async function startCopy(rawInput: unknown, deps: ReplicationDeps): Promise<CopyStatus> {
  const input = parseStep(branchInputSchema, rawInput, 'StartCopy');
  const { source, target } = input;
  const refusal = publicSourceRefusal(deps.policy, source);
  // Refused before copying, so nothing is left to clean up.
  if (refusal) throw new PublicEncryptedImageError(`${source.imageId}: ${refusal}`);
  const instanceStore = source.rootDeviceType === 'instance-store';
  const owner = await clientsOf(deps, source.account);
  const clients = await copyClients(deps, source, target);
  // A DR account copies from a share of the source (refused, with nothing shared, for an aws/ebs-encrypted one).
  await shareWithDrAccount({ ...deps, clients: owner }, source, target);
  const ctx: CopyContext = {
    input,
    deps: { ...deps, clients: owner },
    now: nowOf(deps),
    ec2: ec2Client(clients, target.region),
    encrypted: !instanceStore,
    note: instanceStore
      ? 'instance-store image: CopyImage cannot re-encrypt it, so the copy is unencrypted'
      : undefined,
  };
  const existing = adoptable(await findCopies(ctx.ec2, target.region, source.region, source.imageId));
  if (existing) {
    logOf(deps).info('copy adopted', {
      imageId: existing.imageId,
      region: target.region,
      sourceImageId: source.imageId,
      state: existing.state,
    });
    return copyStatus(ctx, existing.imageId, true, startedAtOf(existing, ctx.now), existing.state);
  }
  return startNewCopy(ctx);
}

interface CopyContext {
  input: BranchInput;
  deps: ReplicationDeps;
  now: Date;
  ec2: ReturnType<typeof ec2Client>;
  encrypted: boolean;
  note: string | undefined;
}

/** The best copy to adopt, available before pending. */
const adoptable = (images: ImageRecord[]): ImageRecord | undefined =>
  images
    .filter((i) => ADOPTABLE_STATES.includes(i.state))
    .sort((a, b) => ADOPTABLE_STATES.indexOf(a.state) - ADOPTABLE_STATES.indexOf(b.state))[0];

function copyStatus(ctx: CopyContext, imageId: string, adopted: boolean, startedAt: Date, state: string): CopyStatus {
  const { now, encrypted, note } = ctx;
  const deadline = copyDeadline(startedAt, ctx.deps.policy);
  const account = ctx.input.target.account;
  // The wait that follows times out into a check; an adopted copy already done is completed by that wait's own check.
  const waitSeconds = fallbackWaitSeconds(0, now, deadline);
  return {
    imageId,
    region: ctx.input.target.region,
    ...(account ? { account } : {}),
    adopted,
    encrypted,
    ...(encrypted ? { kmsKeyId: ctx.input.target.kmsKeyId } : {}),
    ...(note ? { note } : {}),
    startedAt: startedAt.toISOString(),
    deadline: deadline.toISOString(),
    checks: 0,
    waitSeconds,
    nextCheckAt: new Date(now.getTime() + waitSeconds * 1000).toISOString(),
    state,
    pastDeadline: false,
  };
}

/**
 * CopyImage under the token for each variant in turn: a copy of the same name that is ours is adopted; a name
 * taken by an unrelated image is disambiguated; a token whose earlier copy is dead moves on to the next variant.
 */
async function startNewCopy(ctx: CopyContext): Promise<CopyStatus> {
  const { source, target, execution } = ctx.input;
  const { deps, ec2, encrypted, now } = ctx;
  const sourceRecord = await describeImage(ec2Client(deps.clients, source.region), source.region, source.imageId);
  const tags = {
    ...copyTags(sourceRecord ?? { ...source, tags: {} }, deps.policy).tags,
    // A DR-account copy stays changeable by ami-dr's role there only until finalize seals it.
    ...(target.account ? { [TAG.unsealed]: 'true' } : {}),
  };
  const kmsKeyId = encrypted ? target.kmsKeyId : undefined;
  let disambiguate = false;
  for (let variant = 0; variant < TOKEN_VARIANTS; variant++) {
    const request = {
      sourceRegion: source.region,
      sourceImageId: source.imageId,
      name: copyName(source, disambiguate),
      description: sourceRecord?.description,
      kmsKeyId,
      clientToken: copyClientToken(source.region, source.imageId, target.region, kmsKeyId, variant, execution),
      tags,
      tagSnapshots: encrypted,
      completionMinutes: deps.policy.replication.copyCompletionMinutes,
    };
    let imageId: string;
    try {
      imageId = await copyImage(ec2, request);
    } catch (error) {
      const parks = ctx.input.parks ?? 0;
      if (isAwsError(error, 'ResourceLimitExceeded') && parks < SLOT_WAIT.maxParks) {
        throw new CopyQuotaFullError(
          `${target.region}: the concurrent-copy quota is full; waiting for a slot (parked ${parks} times before)`,
          { cause: error },
        );
      }
      if (!isAwsError(error, 'InvalidAMIName.Duplicate')) throw error;
      const named = (await findImagesByName(ec2, target.region, request.name)).find(
        (i) => isCopyOf(i, source) && ADOPTABLE_STATES.includes(i.state),
      );
      if (named) return copyStatus(ctx, named.imageId, true, startedAtOf(named, now), named.state);
      // The name belongs to an unrelated image: use a name that says where this copy comes from.
      disambiguate = true;
      continue;
    }
    const made = await describeImage(ec2, target.region, imageId);
    // Same token, same parameters ⇒ EC2 returns the copy made earlier; if that one failed and was removed, it is
    // no use: start afresh under the next token.
    if (made && !ADOPTABLE_STATES.includes(made.state)) continue;
    logOf(deps).info('copy started', { imageId, region: target.region, sourceImageId: source.imageId, encrypted });
    return copyStatus(ctx, imageId, false, made ? startedAtOf(made, now) : now, made?.state ?? 'pending');
  }
  throw new CopyFailedError(`no usable copy of ${source.imageId} could be started in ${target.region}`);
}

function startedAtOf(image: ImageRecord, fallback: Date): Date {
  const t = Date.parse(image.creationDate);
  return Number.isNaN(t) ? fallback : new Date(t);
}

/**
 * An ami-dr copy of this source, by its provenance tags. EC2's own SourceImageId is not enough: a copy someone else
 * made is theirs (another key, other permissions), and ami-dr must neither adopt nor ever remove it.
 */
function isCopyOf(image: ImageRecord, source: { imageId: string; region: string }): boolean {
  return (
    isReplica(image.tags) &&
    image.tags[TAG.sourceImageId] === source.imageId &&
    image.tags[TAG.sourceRegion] === source.region
  );
}

// ---- CheckCopy ------------------------------------------------------------------------------------------------------

/** The copy's state now, whether it is past its deadline, and how long to wait (for its event) before the next check. */
export async function checkCopy(rawInput: unknown, deps: ReplicationDeps): Promise<CopyStatus> {
  const { copy, source, target } = parseStep(copyStepInputSchema, rawInput, 'CheckCopy');
  const clients = await copyClients(deps, source, target);
  const image = await describeImage(ec2Client(clients, copy.region), copy.region, copy.imageId);
  return statusAfterCheck(copy, image, nowOf(deps));
}

/** The copy's status once its image was looked up (`undefined`: gone) at `now`. */
function statusAfterCheck(copy: CopyStatus, image: ImageRecord | undefined, now: Date): CopyStatus {
  const deadline = new Date(copy.deadline);
  const checks = copy.checks + 1;
  const state = image?.state ?? 'gone';
  // Every copy's state change event wakes its wait (a DR account's forwarded by its rule): checks are the fallback.
  const waitSeconds = fallbackWaitSeconds(checks, now, deadline);
  const next: CopyStatus = {
    ...copy,
    checks,
    state,
    waitSeconds,
    nextCheckAt: new Date(now.getTime() + waitSeconds * 1000).toISOString(),
    pastDeadline: state === 'pending' && now.getTime() >= deadline.getTime(),
  };
  delete next.reason;
  if (!image) next.reason = `copy ${copy.imageId} no longer exists in ${copy.region}`;
  else if (image.stateReason && state !== 'available') next.reason = image.stateReason;
  if (state === 'available') next.availableAt = now.toISOString();
  return next;
}

// ---- WaitForCopy and the copy's state-change event ------------------------------------------------------------------

export interface WaitDeps extends ReplicationDeps {
  /** The copy-waits table (the same name in every region; the one in the source region is used). */
  table: string;
}

/** Tokens outlive the copy's deadline by a day, then the table's TTL removes what nobody took. */
const WAIT_TTL_SLACK_SECONDS = 24 * 3600;

export interface AwaitResult {
  /** `waiting`: the token is stored for the copy's event; `completed`: the copy was done, this task woke itself. */
  result: 'waiting' | 'completed' | 'taken';
  imageId: string;
  region: string;
}

/**
 * The Lambda behind WaitForCopy (`.waitForTaskToken`): stores the task token where the copy's event handler finds
 * it, then checks the copy once, because its event may have come before the token was stored. A copy that is done
 * (or past its deadline) completes the wait here, if the event handler has not taken the token first.
 */
export async function awaitCopy(rawInput: unknown, deps: WaitDeps): Promise<AwaitResult> {
  const input = parseStep(awaitCopyInputSchema, rawInput, 'WaitForCopy');
  const { copy, source, token } = input;
  const ddb = dynamoDbClient(deps.clients, source.region);
  const expiresAt = Math.floor(Date.parse(copy.deadline) / 1000) + WAIT_TTL_SLACK_SECONDS;
  await putCopyWait(ddb, deps.table, {
    region: copy.region,
    account: copy.account,
    imageId: copy.imageId,
    token,
    ...(input.execution ? { execution: input.execution } : {}),
    status: JSON.stringify(copy),
    expiresAt,
  });
  const clients = await copyClients(deps, source, input.target);
  const image = await describeImage(ec2Client(clients, copy.region), copy.region, copy.imageId);
  const now = nowOf(deps);
  const status = statusAfterCheck(copy, image, now);
  const outcome = { imageId: copy.imageId, region: copy.region };
  if (status.state === 'pending' && !status.pastDeadline) return { result: 'waiting', ...outcome };
  const taken = await takeCopyWait(ddb, deps.table, copy.region, copy.imageId, copy.account);
  if (!taken) return { result: 'taken', ...outcome };
  await sendTaskSuccess(sfnClient(deps.clients, source.region), taken.token, status);
  logOf(deps).info('copy already done when its wait began', { ...outcome, state: status.state });
  return { result: 'completed', ...outcome };
}

export interface CopyEventDeps extends WaitDeps {
  /** The account ami-dr runs in; another account's events are acted on only from the region's DR account. */
  accountId: string;
}

export type CopyEventOutcome =
  | { action: 'woken'; region: string; imageId: string; state: string; sourceRegion: string }
  | { action: 'ignored'; reason: string; region: string; imageId?: string };

const COMPLETION_STATES = new Set(['available', 'failed']);

/**
 * The DR region's `EC2 AMI State Change` handler: looks the image up, and for an ami-dr copy that is done, takes the
 * token of the replication waiting for it (in the copy's source region) and completes that wait with the copy's
 * state (`failed` goes on to cleanup). Anything else — another producer's image, a copy nobody waits for (a
 * duplicate or late event), a stale token — is ignored.
 *
 * A DR account's events reach this bus through its forwarding rule (deploy/dr-account.yml), and name an image in
 * that account. Such an event is never trusted as it stands: it is acted on only from the DR account the policy
 * names for the event's region; the image is read from EC2 through ami-dr's role there (owned by that account, an
 * ami-dr copy, done); and only a token stored for that account, region and image (the copy the execution started
 * there) can be taken. The event only tells ami-dr when to look.
 */
export async function handleCopyStateEvent(raw: unknown, deps: CopyEventDeps): Promise<CopyEventOutcome> {
  const event = parseImageEvent(raw);
  const { region } = event;
  const ignored = (reason: string, imageId?: string): CopyEventOutcome => {
    logOf(deps).info('copy event ignored', { reason, region, imageId, eventId: event.id });
    return { action: 'ignored', reason, region, ...(imageId ? { imageId } : {}) };
  };
  if (event.kind !== 'state-change' || !event.imageId) return ignored('not an AMI state change');
  const imageId = event.imageId;
  const own = event.account === deps.accountId;
  const dr = own ? undefined : drRegion(deps.policy, region);
  if (!own && (!dr?.account || dr.account !== event.account)) return ignored('another account', imageId);
  let clients = deps.clients;
  if (dr?.account) {
    try {
      clients = await targetClients(deps, { region, account: dr.account, roleArn: drRoleArn(dr) });
    } catch (error) {
      // Nothing can be confirmed without the role; the wait's own fallback check reports the region.
      if (!(error instanceof DrAccountAccessError)) throw error;
      return ignored('the DR account role cannot be assumed', imageId);
    }
  }
  const image = await describeImage(ec2Client(clients, region), region, imageId);
  if (!image) return ignored('image no longer exists', imageId);
  if (dr?.account && image.ownerId !== dr.account) return ignored('not an image of the DR account', imageId);
  const sourceRegion = image.tags[TAG.sourceRegion];
  if (!isReplica(image.tags) || !sourceRegion) return ignored('not an ami-dr copy', imageId);
  if (!COMPLETION_STATES.has(image.state)) return ignored(`copy is ${image.state}`, imageId);
  const ddb = dynamoDbClient(deps.clients, sourceRegion);
  const taken = await takeCopyWait(ddb, deps.table, region, imageId, dr?.account);
  if (!taken) return ignored('no replication waits for this copy', imageId);
  const copy = copyStatusSchema.parse(JSON.parse(taken.status));
  const status = statusAfterCheck(copy, image, nowOf(deps));
  const delivered = await sendTaskSuccess(sfnClient(deps.clients, sourceRegion), taken.token, status);
  if (!delivered) return ignored('the wait had already ended', imageId);
  logOf(deps).info('copy wait woken', { imageId, region, sourceRegion, state: image.state });
  return { action: 'woken', region, imageId, state: image.state, sourceRegion };
}

// ---- FinalizeCopy ---------------------------------------------------------------------------------------------------

/**
 * Makes the available copy equal to its source where it matters: user tags (minus `aws:` and the deny list) plus
 * extras and provenance on the image and its snapshots; launch permissions; snapshot createVolumePermission for the
 * accounts when asked; the deprecation time; deregistration protection when asked.
 */
export async function finalizeCopy(rawInput: unknown, deps: ReplicationDeps): Promise<RegionResult> {
  const { source, target, copy } = parseStep(copyStepInputSchema, rawInput, 'FinalizeCopy');
  // The copy no longer counts against the region's quota: the oldest copy waiting for a slot starts now.
  await releaseCopySlot(deps, copy);
  const owner = await clientsOf(deps, source.account);
  const now = nowOf(deps);
  const sourceEc2 = ec2Client(owner, source.region);
  const ec2 = ec2Client(await targetClients({ ...deps, clients: owner }, target), target.region);
  // Read afresh: the source's tags and permissions may have changed while the copy ran.
  const sourceImage = await describeImage(sourceEc2, source.region, source.imageId);
  const sourcePermissions = sourceImage ? await getLaunchPermissions(sourceEc2, source.imageId) : [];
  const copyImage = await describeImage(ec2, target.region, copy.imageId);
  if (!copyImage)
    throw new CopyFailedError(`copy ${copy.imageId} disappeared from ${target.region} before it was finalized`);
  const snapshotIds = copyImage.snapshots.map((s) => s.snapshotId);
  // The key EC2 reports on the copy's snapshots, not the one asked for (an alias resolves to its key's ARN).
  const kmsKeyId = copy.encrypted
    ? (await describeSnapshotKeys(ec2, snapshotIds)).values().next().value?.kmsKeyId
    : undefined;
  const availableAt = copy.availableAt ?? now.toISOString();
  const applied = await applyToCopy(
    { ...deps, clients: owner },
    { source, target, copy, sourceImage, sourcePermissions, copyImage, now },
  );
  const lag = (Date.parse(availableAt) - Date.parse(source.creationDate)) / 1000;
  logOf(deps).info('copy finalized', {
    imageId: copy.imageId,
    region: target.region,
    ...(target.account ? { account: target.account } : {}),
    sourceImageId: source.imageId,
    lagSeconds: lag,
  });
  return {
    region: target.region,
    ...(target.account ? { account: target.account } : {}),
    status: 'available',
    imageId: copy.imageId,
    adopted: copy.adopted,
    encrypted: copy.encrypted,
    ...((kmsKeyId ?? copy.kmsKeyId) ? { kmsKeyId: kmsKeyId ?? copy.kmsKeyId } : {}),
    ...(copy.note ? { note: copy.note } : {}),
    startedAt: copy.startedAt,
    availableAt,
    ...(Number.isFinite(lag) ? { lagSeconds: Math.max(0, lag) } : {}),
    checks: copy.checks,
    applied,
  };
}

interface FinalizeWork {
  source: BranchInput['source'];
  target: BranchInput['target'];
  copy: CopyStatus;
  sourceImage: ImageRecord | undefined;
  sourcePermissions: Awaited<ReturnType<typeof getLaunchPermissions>>;
  copyImage: ImageRecord;
  now: Date;
}

/**
 * Tags, launch permissions, key grants, snapshot permissions, deprecation and protection on the copy; a DR
 * account's copy is then sealed (its `ami-dr:unsealed` tag removed), after which ami-dr's role there can no longer
 * change it. Key grants for consumers are the DR account's own business there (its key policy decides).
 */
async function applyToCopy(deps: ReplicationDeps, work: FinalizeWork): Promise<NonNullable<RegionResult['applied']>> {
  const { source, target, copy, sourceImage, copyImage, now } = work;
  const policy = deps.policy;
  // An adopted DR-account copy sealed by an earlier run is final: ami-dr's role there may no longer change it.
  if (target.account && copyImage.tags[TAG.unsealed] !== 'true')
    return {
      tags: 0,
      droppedTags: [],
      launchPermissions: 0,
      snapshotPermissions: 0,
      deregistrationProtection: copyImage.deregistrationProtection,
      sealed: true,
    };
  const ec2 = ec2Client(await targetClients(deps, target), target.region);
  const snapshotIds = copyImage.snapshots.map((s) => s.snapshotId);
  const availableAt = copy.availableAt ?? now.toISOString();
  const permissions = launchPermissionsFor(work.sourcePermissions, policy, copy.encrypted);
  const { tags, dropped } = copyTags(
    sourceImage ?? { ...source, tags: {} },
    policy,
    copyImage.tags[TAG.replicatedAt] ?? availableAt,
  );
  await tagResources(ec2, [copy.imageId, ...snapshotIds], tags);
  await addLaunchPermissions(ec2, copy.imageId, permissions);
  // An encrypted copy shared with an account launches there only if the account may use the DR key.
  const keyGrants =
    copy.encrypted && keyAccessMode(policy) === 'grant' && !target.account
      ? await grantKeyToConsumers(kmsClient(deps.clients, target.region), copy.kmsKeyId ?? target.kmsKeyId, permissions)
      : [];
  const accounts = policy.replication.shareSnapshots ? permissions.flatMap((p) => (p.userId ? [p.userId] : [])) : [];
  await shareSnapshots(ec2, snapshotIds, accounts);
  const deprecationTime = deprecationFor(sourceImage?.deprecationTime, policy, now);
  if (deprecationTime) await setDeprecation(ec2, copy.imageId, deprecationTime);
  const protect = protectionFor(policy, target.region);
  if (protect) await protectFromDeregistration(ec2, copy.imageId);
  if (target.account) await untagResources(ec2, [copy.imageId, ...snapshotIds], [TAG.unsealed]);
  return {
    tags: Object.keys(tags).length,
    droppedTags: dropped,
    launchPermissions: permissions.length,
    snapshotPermissions: accounts.length * snapshotIds.length,
    ...(keyGrants.length ? { keyGrants: keyGrants.length } : {}),
    ...(deprecationTime ? { deprecationTime } : {}),
    deregistrationProtection: protect,
    ...(target.account ? { sealed: true } : {}),
  };
}

// ---- CleanupCopy ----------------------------------------------------------------------------------------------------

const DEAD_COPY_STATES = new Set(['failed', 'error', 'invalid']);

/**
 * The end of a failed branch: removes the failed or timed-out copy and its snapshots (and, when the failure came
 * before the copy was known, any failed copy of this source in the region), then reports why the region
 * failed. An adopted copy that is `available` is kept: it was made by an earlier run and may be in service (only
 * finalizing it failed; readiness repairs it). Safe to run twice.
 */
export async function cleanupCopy(rawInput: unknown, deps: ReplicationDeps): Promise<RegionResult> {
  const { source, target, copy, error } = parseStep(cleanupInputSchema, rawInput, 'CleanupCopy');
  const { name, reason } = failureOf(copy, error, deps.policy);
  const report: RemovalReport = { deregistered: [], snapshotsDeleted: [], problems: [] };
  let clients: Clients;
  try {
    clients = await copyClients(deps, source, target);
  } catch (unreachable) {
    // The DR account's role cannot be assumed: nothing there can have been made through it, nor removed.
    if (!(unreachable instanceof DrAccountAccessError)) throw unreachable;
    report.problems.push(unreachable.message);
    return failedResult({ target, copy, name, reason, report, notes: [] }, deps);
  }
  const ec2 = ec2Client(clients, target.region);
  const copies = await findCopies(ec2, target.region, source.region, source.imageId);
  const inService = (image: ImageRecord) => copy?.adopted === true && image.state === 'available';
  // Without a known copy (the failure came before StartCopy returned one), only dead copies of the source go: a
  // pending one may be another execution's copy in flight.
  const doomed = copies.filter(
    (c) => (copy ? c.imageId === copy.imageId : DEAD_COPY_STATES.has(c.state)) && !inService(c),
  );
  if (copy && !copies.some((c) => c.imageId === copy.imageId)) {
    const found = await describeImage(ec2, target.region, copy.imageId);
    if (found && isCopyOf(found, source) && !inService(found)) doomed.push(found);
  }
  const kept = copies.some((c) => c.imageId === copy?.imageId && inService(c));
  const notes = [
    ...(kept ? ['the copy was adopted and is available, so it was kept'] : []),
    ...(copy?.note ? [copy.note] : []),
  ];
  for (const image of doomed) {
    const removed = await removeCopy(
      ec2,
      target.region,
      image.imageId,
      image.snapshots.map((s) => s.snapshotId),
    );
    report.deregistered.push(...removed.deregistered);
    report.snapshotsDeleted.push(...removed.snapshotsDeleted);
    report.problems.push(...removed.problems);
  }
  const keep = new Set(copies.filter((c) => !doomed.includes(c)).flatMap((c) => c.snapshots.map((s) => s.snapshotId)));
  await deleteLeftoverSnapshots(ec2, source.region, source.imageId, report, keep);
  // A failed copy, or a pending one just deregistered, frees its quota slot (none was taken without a copy).
  if (copy) await releaseCopySlot(deps, copy);
  logOf(deps).warn('copy failed', {
    region: target.region,
    sourceImageId: source.imageId,
    error: name,
    reason,
    removed: report.deregistered,
  });
  return failedResult({ target, copy, name, reason, report, notes }, deps);
}

interface Failure {
  target: BranchInput['target'];
  copy: CopyStatus | undefined;
  name: string;
  reason: string;
  report: RemovalReport;
  notes: string[];
}

function failedResult({ target, copy, name, reason, report, notes }: Failure, deps: ReplicationDeps): RegionResult {
  if (report.problems.length && !report.deregistered.length)
    logOf(deps).warn('copy failed', { region: target.region, error: name, reason, problems: report.problems });
  return {
    region: target.region,
    ...(target.account ? { account: target.account } : {}),
    status: 'failed',
    ...(copy
      ? {
          imageId: copy.imageId,
          adopted: copy.adopted,
          encrypted: copy.encrypted,
          startedAt: copy.startedAt,
          checks: copy.checks,
        }
      : {}),
    ...(notes.length ? { note: notes.join('; ') } : {}),
    error: name,
    reason,
    cleanup: report,
  };
}

function failureOf(
  copy: CopyStatus | undefined,
  error: { Error: string; Cause?: string } | undefined,
  policy: Policy,
): { name: string; reason: string } {
  if (error) return { name: error.Error, reason: causeMessage(error.Cause) ?? error.Error };
  if (copy?.pastDeadline) {
    return {
      name: COPY_TIMED_OUT,
      reason: `copy ${copy.imageId} not available after ${policy.replication.deadlineHours} h (state ${copy.state})`,
    };
  }
  if (copy) return { name: COPY_FAILED, reason: copy.reason ?? `copy ${copy.imageId} is ${copy.state}` };
  return { name: COPY_FAILED, reason: 'unknown failure' };
}

/** Step Functions hands a Lambda's error over as a JSON `Cause` ({ errorType, errorMessage }); locally it is the message. */
function causeMessage(cause: string | undefined): string | undefined {
  if (!cause) return undefined;
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: unknown };
    if (typeof parsed.errorMessage === 'string') return parsed.errorMessage;
  } catch {
    // not JSON: the message itself
  }
  return cause;
}

// ---- Summarize ------------------------------------------------------------------------------------------------------

/** Per-region outcome and lag; metrics (EMF); an SNS notification when any region failed and a topic is set. */
export async function summarize(rawInput: unknown, deps: ReplicationDeps): Promise<Summary> {
  const input = parseStep(summarizeInputSchema, rawInput, 'Summarize');
  const regions = input.results;
  const succeeded = regions.filter((r) => r.status === 'available').length;
  const failed = regions.length - succeeded + (input.error ? 1 : 0);
  const lags = regions.flatMap((r) => (r.lagSeconds === undefined ? [] : [r.lagSeconds]));
  const outcome: Summary['outcome'] = failed === 0 ? 'replicated' : succeeded === 0 ? 'failed' : 'partial';
  // Every region's copy has ended: the DR accounts no longer need the source.
  const shares = await unshareFromDrAccounts(
    { ...deps, clients: await clientsOf(deps, input.source.account) },
    input.source,
  );
  const sink = deps.metrics ?? powertoolsMetrics;
  sink.addMetric(METRIC.replicationSucceeded, MetricUnit.Count, succeeded);
  sink.addMetric(METRIC.replicationFailed, MetricUnit.Count, failed);
  for (const lag of lags) sink.addMetric(METRIC.replicationLagSeconds, MetricUnit.Seconds, lag);
  sink.publishStoredMetrics();

  const summary: Summary = {
    source: input.source,
    ...(shares.length ? { shares } : {}),
    outcome,
    succeeded,
    failed,
    ...(lags.length ? { maxLagSeconds: Math.max(...lags) } : {}),
    regions,
    notified: false,
  };
  const topic = deps.policy.notifications.snsTopicArn;
  if (failed > 0 && topic) {
    const failedRegions = regions.filter((r) => r.status === 'failed').map((r) => r.region);
    await publishNotification(
      snsClient(deps.clients, topicRegion(topic)),
      topic,
      `ami-dr: replication of ${input.source.imageId} failed in ${failedRegions.join(', ') || 'the state machine'}`,
      { ...summary, ...(input.error ? { error: input.error } : {}) },
    );
    summary.notified = true;
  }
  logOf(deps).info('replication summarized', { sourceImageId: input.source.imageId, outcome, succeeded, failed });
  return summary;
}
