import { createHash } from 'node:crypto';
import type { ImageEvent } from './image-event.ts';
import { NOT_COPYABLE_STATES, permissionKey, type ImageRecord, type LaunchPermission } from './image.ts';
import { policyVersion, type Policy } from './policy.ts';
import { compileGlob } from './glob.ts';
import { matchSelector } from './selector.ts';
import { isReplica, REPLICA_ROLE, TAG } from './tags.ts';

/**
 * The replication's decisions, free of I/O: whether an event or an image is acted on (and why not), the names
 * and tokens that make repeated work harmless, what a copy carries, and how long to wait for it.
 */

// ---- errors (their names are matched by the state machine) -------------------------------------------------

/** Public launch permission requested on an encrypted image: EC2 refuses it, so ami-dr refuses it first. */
export class PublicEncryptedImageError extends Error {
  override name = 'PublicEncryptedImageError';
}

/**
 * CopyImage refused for the DR region's concurrent-copy quota (`ResourceLimitExceeded`) and the branch may still
 * park: the state machine catches it into WaitForSlot, the copy-slot queue.
 */
export class CopyQuotaFullError extends Error {
  override name = 'CopyQuotaFullError';
}

/**
 * Why replication refuses a source, if it does. A public EBS source whose launch permissions are copied would need a
 * public copy, and the copy is encrypted, which EC2 forbids. Without copied permissions the copy simply stays private.
 */
export function publicSourceRefusal(
  policy: Policy,
  source: { public: boolean; rootDeviceType: 'ebs' | 'instance-store' },
): string | undefined {
  if (!source.public || source.rootDeviceType === 'instance-store' || !policy.replication.copyLaunchPermissions)
    return undefined;
  return 'source is public: its copy would be encrypted and encrypted images cannot be public, so replication refuses it (stop sharing it publicly, exclude it, or set replication.copyLaunchPermissions: false)';
}

// ---- acting on an event -------------------------------------------------------------------------------------

export type SkipReason =
  | 'call-failed'
  | 'another-account'
  | 'not-a-source-region'
  | 'own-role'
  | 'not-available'
  | 'image-not-found'
  | 'replica'
  | 'not-owned'
  | 'marketplace'
  | 'selector'
  | 'not-copyable';

export type Verdict = { act: true } | { act: false; reason: SkipReason; detail: string };

export interface ScreenContext {
  policy: Policy;
  /** The account ami-dr runs in. */
  accountId: string;
  /** ARN prefix of ami-dr's own roles (`arn:aws:iam::<account>:role/ami-dr-`): calls it made itself are its copies. */
  roleArnPrefix?: string;
}

const ACT: Verdict = { act: true };
const skip = (reason: SkipReason, detail: string): Verdict => ({ act: false, reason, detail });

/** First pass, on the event alone (no API call needed). */
export function screenEvent(event: ImageEvent, ctx: ScreenContext): Verdict {
  if (event.errorCode) return skip('call-failed', `${event.eventName ?? 'call'} failed with ${event.errorCode}`);
  if (event.account !== ctx.accountId) return skip('another-account', `event from account ${event.account}`);
  if (!ctx.policy.regions.sources.includes(event.region))
    return skip('not-a-source-region', `${event.region} is not a source region`);
  const prefix = ctx.roleArnPrefix;
  if (prefix && isOwnRole(prefix, event))
    return skip('own-role', `called by ami-dr's own role ${event.callerRoleArn ?? event.callerArn}`);
  if (event.kind === 'state-change' && event.state !== 'available')
    return skip('not-available', `image state is ${event.state}`);
  if (!event.imageId) return skip('image-not-found', 'event names no image');
  return ACT;
}

function isOwnRole(prefix: string, event: ImageEvent): boolean {
  // The prefix may name the roles (arn:aws:iam::<acct>:role/ami-dr-...) or their sessions
  // (arn:aws:sts::<acct>:assumed-role/ami-dr-...); CloudTrail gives the session ARN and the role behind it.
  const candidates = [event.callerArn, event.callerRoleArn].filter((a): a is string => Boolean(a));
  for (const arn of [...candidates]) {
    const session = /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([^/]+)\//.exec(arn);
    if (session) candidates.push(`arn:${session[1]}:iam::${session[2]}:role/${session[3]}`);
    const role = /^arn:(aws[a-z-]*):iam::(\d{12}):role\/(?:.*\/)?([^/]+)$/.exec(arn);
    if (role) candidates.push(`arn:${role[1]}:sts::${role[2]}:assumed-role/${role[3]}/`);
  }
  return candidates.some((arn) => arn.startsWith(prefix));
}

/** Second pass, on the image as DescribeImages reports it (`undefined`: not found). */
export function screenImage(image: ImageRecord | undefined, ctx: ScreenContext): Verdict {
  if (!image) return skip('image-not-found', 'image not found in its region');
  if (isReplica(image.tags)) return skip('replica', `${image.imageId} is an ami-dr copy (${TAG.role}=${REPLICA_ROLE})`);
  if (image.ownerId !== ctx.accountId) {
    if (image.productCodes.length > 0) {
      return skip(
        'marketplace',
        `${image.imageId} carries product codes and is owned by ${image.ownerId}: it cannot be copied`,
      );
    }
    return skip('not-owned', `${image.imageId} is owned by ${image.ownerId}`);
  }
  if (NOT_COPYABLE_STATES.has(image.state)) return skip('not-copyable', `${image.imageId} is ${image.state}`);
  const selected = matchSelector(ctx.policy.selector, image);
  if (!selected.match) return skip('selector', selected.detail);
  return ACT;
}

// ---- names and tokens -----------------------------------------------------------------------------------------

const EXECUTION_NAME_MAX = 80;
const CLIENT_TOKEN_MAX = 64;

/**
 * The replication execution's name: one per (source region, image, policy version), so duplicate events join the
 * same execution. Only `[A-Za-z0-9_-]` (Step Functions forbids spaces, brackets, wildcards and most punctuation);
 * a hash keeps it unique when it must be shortened. `attempt` > 0 names a deliberate re-drive.
 */
export function executionName(region: string, imageId: string, version: string, attempt = 0): string {
  const raw = [region, imageId, version, ...(attempt > 0 ? [`r${attempt}`] : [])].join('_');
  const safe = raw.replace(/[^A-Za-z0-9_-]/g, '-');
  if (safe.length <= EXECUTION_NAME_MAX && safe === raw) return safe;
  const hash = sha256(raw).slice(0, 16);
  return `${safe.slice(0, EXECUTION_NAME_MAX - hash.length - 1)}_${hash}`;
}

/**
 * CopyImage's ClientToken: same source, destination, key and execution ⇒ same token, so a retried StartCopy gets the
 * copy it already started instead of a second one. The execution's name is part of it because EC2 remembers a token:
 * a later execution (a re-drive after a failed copy was removed, or one whose tags or policy changed) would otherwise
 * get the dead copy back, or `IdempotentParameterMismatch`, for ever. Later executions find earlier live copies by
 * their provenance tags instead. `variant` separates a deliberately different call (another name).
 */
export function copyClientToken(
  sourceRegion: string,
  imageId: string,
  targetRegion: string,
  kmsKeyId: string | undefined,
  variant = 0,
  execution = '',
): string {
  const token = `ami-dr-${sha256([sourceRegion, imageId, targetRegion, kmsKeyId ?? '', String(variant), execution].join('\n')).slice(0, 48)}`;
  return token.slice(0, CLIENT_TOKEN_MAX);
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The policy's tag value on copies: its name and content version. */
export function policyTag(policy: Policy): string {
  return `${policy.name}@${policyVersion(policy)}`;
}

const NAME_CHARS = /[^A-Za-z0-9()[\] ./\-'@_]/g;

/**
 * The copy's name (CopyImage: 3-128 chars of `A-Za-z0-9()[] ./-'@_`). The source's name first; if that name is
 * taken in the destination by an unrelated image, a name that also says where it came from.
 */
export function copyName(source: Pick<ImageRecord, 'name' | 'imageId' | 'region'>, disambiguate = false): string {
  const base = source.name.replace(NAME_CHARS, '-') || source.imageId;
  if (!disambiguate) return base.padEnd(3, '_').slice(0, 128);
  const suffix = ` (${source.imageId} from ${source.region})`;
  return `${base.slice(0, 128 - suffix.length)}${suffix}`;
}

// ---- what a copy carries ------------------------------------------------------------------------------------------

/** EC2 allows 50 user tags per resource. */
export const MAX_TAGS = 50;

export interface CopyTagSet {
  tags: Record<string, string>;
  /** Source tag keys left off because the copy would have exceeded 50 tags. */
  dropped: string[];
}

/**
 * Tags of the copy: the source's user tags (unless `copyTags` is off) minus `aws:`-prefixed ones, ami-dr's own, and
 * the deny list; then the policy's extra tags; then provenance, which always wins and is always kept.
 * `replicatedAt` is added once the copy is `available`.
 */
export function copyTags(
  source: Pick<ImageRecord, 'imageId' | 'region' | 'creationDate' | 'tags'>,
  policy: Policy,
  replicatedAt?: string,
): CopyTagSet {
  const r = policy.replication;
  const provenance: Record<string, string> = {
    [TAG.role]: REPLICA_ROLE,
    [TAG.sourceImageId]: source.imageId,
    [TAG.sourceRegion]: source.region,
    [TAG.sourceCreatedAt]: source.creationDate,
    [TAG.policy]: policyTag(policy),
    ...(replicatedAt ? { [TAG.replicatedAt]: replicatedAt } : {}),
  };
  const denied = r.tagDenyList.map(compileGlob);
  const user = r.copyTags
    ? Object.entries(source.tags)
        .filter(([k]) => !k.startsWith('aws:') && !k.startsWith('ami-dr:') && !denied.some((matches) => matches(k)))
        .sort(([a], [b]) => a.localeCompare(b))
    : [];
  const extras = Object.entries(r.extraTags).filter(([k]) => !(k in provenance));
  const room = MAX_TAGS - Object.keys(provenance).length - extras.length;
  const kept = user.filter(([k]) => !(k in r.extraTags)).slice(0, Math.max(0, room));
  const dropped = user
    .filter(([k]) => !(k in r.extraTags))
    .slice(Math.max(0, room))
    .map(([k]) => k);
  return { tags: { ...Object.fromEntries(kept), ...Object.fromEntries(extras), ...provenance }, dropped };
}

/**
 * Launch permissions of the copy: the source's (accounts, organizations, OUs; when `copyLaunchPermissions`; not the
 * policy's DR accounts, which ami-dr shares the source with for their copies) plus the policy's additions, without
 * duplicates. Public sharing of an encrypted copy is refused with a named error.
 */
export function launchPermissionsFor(
  sourcePermissions: LaunchPermission[],
  policy: Policy,
  encrypted: boolean,
): LaunchPermission[] {
  const r = policy.replication;
  // The source's share with a DR account is ami-dr's own, made for the copy: copies never carry it.
  const vaults = new Set(policy.regions.dr.flatMap((d) => (d.account ? [d.account] : [])));
  const wanted: LaunchPermission[] = [
    ...(r.copyLaunchPermissions ? sourcePermissions.filter((p) => !p.userId || !vaults.has(p.userId)) : []),
    ...r.addLaunchPermissions.userIds.map((userId) => ({ userId })),
    ...r.addLaunchPermissions.organizationArns.map((organizationArn) => ({ organizationArn })),
    ...r.addLaunchPermissions.organizationalUnitArns.map((organizationalUnitArn) => ({ organizationalUnitArn })),
    ...(r.addLaunchPermissions.public ? [{ group: 'all' as const }] : []),
  ];
  const seen = new Set<string>();
  const result: LaunchPermission[] = [];
  for (const p of wanted) {
    const key = permissionKey(p);
    if (!key || seen.has(key)) continue;
    seen.add(key);
    result.push(p);
  }
  if (encrypted && result.some((p) => p.group === 'all')) {
    throw new PublicEncryptedImageError(
      'the source is public, but its copy is encrypted and encrypted images cannot be made public',
    );
  }
  return result;
}

/**
 * The deprecation time to give the copy: the source's, when the policy carries deprecation and that time is still
 * ahead (EnableImageDeprecation refuses the past). `undefined`: leave the copy without one.
 */
export function deprecationFor(
  sourceDeprecationTime: string | undefined,
  policy: Policy,
  now: Date,
): string | undefined {
  if (!policy.replication.copyDeprecation || !sourceDeprecationTime) return undefined;
  const at = Date.parse(sourceDeprecationTime);
  if (Number.isNaN(at) || at <= now.getTime()) return undefined;
  return new Date(at).toISOString();
}

// ---- waiting --------------------------------------------------------------------------------------------------------

export const WAIT = {
  initialSeconds: 30,
  factor: 2,
  /**
   * Doubling to a 4 h cap bounds a 12 h copy to 11 checks (≈35 state transitions per region); a 30 min cap would
   * take 29 checks (≈90). The price is latency: a copy is seen at most about as late again as it has run.
   */
  capSeconds: 4 * 3600,
} as const;

/** Seconds to wait before check number `checks` (0 = the first): 30, 60, 120, ... up to the cap. */
export function waitSeconds(checks: number): number {
  const n = Math.max(0, Math.floor(checks));
  return Math.min(WAIT.capSeconds, WAIT.initialSeconds * WAIT.factor ** Math.min(n, 30));
}

/**
 * The safety net while a copy's completion event is awaited: the wait times out after 2 h, then 4 h, then every
 * 8 h, and the copy is checked once (checks at 2 h, 6 h, 14 h, 22 h, ...). With events, a 12 h copy costs at most
 * two such checks; without them (events are best effort) a copy is seen at the next check: at most 2 h late if it
 * took under 2 h, 4 h under 6 h, 8 h beyond.
 */
export const FALLBACK = { initialSeconds: 2 * 3600, factor: 2, capSeconds: 8 * 3600 } as const;

/** The fallback wait before check number `checks` (0 = the first), never past the deadline. */
export function fallbackWaitSeconds(checks: number, now: Date, deadline: Date): number {
  const n = Math.max(0, Math.floor(checks));
  const seconds = Math.min(FALLBACK.capSeconds, FALLBACK.initialSeconds * FALLBACK.factor ** Math.min(n, 30));
  const untilDeadline = Math.ceil((deadline.getTime() - now.getTime()) / 1000);
  return Math.max(1, Math.min(seconds, untilDeadline));
}

/** The next wait, never ending beyond the deadline by more than a second (so a timed-out copy is seen promptly). */
export function nextWaitSeconds(checks: number, now: Date, deadline: Date): number {
  const untilDeadline = Math.ceil((deadline.getTime() - now.getTime()) / 1000);
  return Math.max(1, Math.min(waitSeconds(checks), untilDeadline));
}

/** When an in-flight copy is given up: its start plus the policy's `deadlineHours`. */
export function copyDeadline(startedAt: Date, policy: Policy): Date {
  return new Date(startedAt.getTime() + policy.replication.deadlineHours * 3600_000);
}
