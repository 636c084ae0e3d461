import type { ImageRecord } from './image.ts';
import type { Policy, RetentionScope } from './policy.ts';
import { sourceKey, type ImageReference, type RetentionInventory } from './retention-inventory.ts';
import { compileSelector } from './selector.ts';
import { TAG, isReplica, isRetained } from './tags.ts';
import { plural } from './text.ts';

/**
 * The retention planner: inventory + policy + now => one action per image, each with its reason. Pure and
 * deterministic (no clock, no I/O), so a dry-run is this plan printed and tests need nothing but data.
 *
 * Rules, first match wins (the order is the report's order of reasons):
 *  1. not owned by the account                      keep  not-owned
 *  2. made by AWS Backup                            keep  backup-owned   (see isBackupImage)
 *  3. state deregistered                            keep  deregistered   (nothing left to do)
 *  4. outside the policy's scope                    keep  not-in-scope   (see scopeOf)
 *  5. tagged ami-dr:retain=true                     keep  retained
 *  6. deregistration protection on                  keep  deregistration-protected
 *  7. pending / transient                           keep  in-progress
 *  8. retention disabled, or the scope has no days  keep  retention-disabled / no-rule
 *  9. the scope's family tag is on none of its images keep family-tag-unknown (and a plan error)
 * 10. creation date unreadable                      keep  unknown-age
 * 11. referenced (instances, launch templates, launch configurations, ASGs, DescribeImageReferences),
 *     when protectInUse                             keep  referenced
 * 12. among the newest keepLatest available images of its family   keep latest-in-family
 * 13. a replica whose source still exists (keepReplicasOfLiveSources)  keep live-source,
 *     or whose source region was not looked up      keep  source-unknown
 * 14. younger than the scope's first threshold      keep  not-old-enough
 * 15. older than deregisterAfterDays                deregister (with its snapshots, or its S3 bundle unless
 *                                                   another registered image names the same bundle)
 * 16. older than deprecateAfterDays: deprecated at `now` unless already deprecated (by a day after now) or disabled
 *                                                   deprecate | keep already-deprecated
 */

export type Scope = 'sources' | 'replicas';

export const KEEP_REASONS = [
  'not-owned',
  'backup-owned',
  'deregistered',
  'not-in-scope',
  'retained',
  'deregistration-protected',
  'in-progress',
  'retention-disabled',
  'no-rule',
  'family-tag-unknown',
  'unknown-age',
  'referenced',
  'latest-in-family',
  'live-source',
  'source-unknown',
  'not-old-enough',
  'already-deprecated',
] as const;
export type KeepReason = (typeof KEEP_REASONS)[number];

interface ActionBase {
  imageId: string;
  name: string;
  scope?: Scope;
  family?: string;
  /** Why, in words a person reads in the report. */
  detail: string;
}

export interface KeepAction extends ActionBase {
  action: 'keep';
  reason: KeepReason;
  references?: readonly ImageReference[];
}

export interface DeprecateAction extends ActionBase {
  action: 'deprecate';
  scope: Scope;
  /** ISO 8601; the apply step never sends a time in the past. */
  deprecateAt: string;
}

export interface PlannedSnapshot {
  snapshotId: string;
  sizeGiB: number;
  /** Another image (not being removed) uses it too: DeleteAssociatedSnapshots will skip it. */
  sharedWithKeptImage: boolean;
}

export interface DeregisterAction extends ActionBase {
  action: 'deregister';
  scope: Scope;
  rootDeviceType: 'ebs' | 'instance-store';
  /** Instance-store: `bucket/key/of/image.manifest.xml`. */
  imageLocation?: string;
  /** Instance-store: another registered image names the same bundle (kept, or removed in this plan and deleting it). */
  keepBundle?: boolean;
  snapshots: PlannedSnapshot[];
}

export type RetentionAction = KeepAction | DeprecateAction | DeregisterAction;

export interface RetentionPlan {
  region: string;
  accountId: string;
  /** The `now` the plan was made for, ISO 8601. */
  now: string;
  actions: RetentionAction[];
  /** Planning problems that made the planner hold back (each names the policy field); the report lists them as errors. */
  errors: string[];
  warnings: string[];
  /** GiB of snapshots that removing the planned images should free (snapshots no kept image shares). */
  expectedSnapshotGiB: number;
}

export class RetentionPlanError extends Error {
  override name = 'RetentionPlanError';
}

const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;
/**
 * A deprecation already set for no later than a day after `now` counts as done: the policy speaks in days, and
 * the apply step sets times slightly after the plan's `now` (EnableImageDeprecation refuses the past), which must
 * not make the next run deprecate the same image again.
 */
const DEPRECATION_SLACK_MS = 86_400_000;
const IN_FLUX = new Set(['pending', 'transient']);
/** Images that can launch, the only ones that count towards keepLatest (a failed build must not displace a good one). */
const LAUNCHABLE = new Set(['available']);
const MAX_EXAMPLES = 5;

interface Candidate {
  index: number;
  image: ImageRecord;
  scope: Scope;
  created: number;
  family: string;
}

export function planRetention(
  inventory: RetentionInventory,
  policy: Readonly<Policy>,
  now: number | Date,
): RetentionPlan {
  const nowMs = typeof now === 'number' ? now : now.getTime();
  if (!Number.isFinite(nowMs)) throw new RetentionPlanError('now is not a valid time');
  if (!/^\d{12}$/.test(inventory.accountId))
    throw new RetentionPlanError(`inventory.accountId "${inventory.accountId}" is not a 12-digit account id`);
  const retention = policy.retention;
  for (const scope of ['sources', 'replicas'] as const) {
    const s = retention[scope];
    // parsePolicy refuses these too; a policy built by hand must not get past the planner either.
    if (s.deregisterAfterDays !== undefined && s.keepLatest === 0 && !retention.allowRemovingAll) {
      throw new RetentionPlanError(
        `retention.${scope}.keepLatest is 0, so every image in scope could be removed; set keepLatest or retention.allowRemovingAll: true`,
      );
    }
    for (const field of ['deprecateAfterDays', 'deregisterAfterDays', 'keepLatest'] as const) {
      const v = s[field];
      if (v !== undefined && (!Number.isInteger(v) || v < 0))
        throw new RetentionPlanError(`retention.${scope}.${field} must be a whole number >= 0`);
    }
  }

  const inScope = scopeMatcher(policy);
  const deprecateAtMs = Math.ceil(nowMs / MINUTE_MS) * MINUTE_MS;
  const deprecateAt = new Date(deprecateAtMs).toISOString();
  const warnings: string[] = [...inventory.warnings];
  const errors: string[] = [];
  const actions: RetentionAction[] = new Array(inventory.images.length);

  // Pass 1: the reasons that need nothing but the image itself, and the scope of the rest.
  const pending: Candidate[] = [];
  const keep = (
    i: number,
    image: ImageRecord,
    reason: KeepReason,
    detail: string,
    scope?: Scope,
    family?: string,
    references?: readonly ImageReference[],
  ): void => {
    const a: KeepAction = { action: 'keep', imageId: image.imageId, name: image.name, reason, detail };
    if (scope) a.scope = scope;
    if (family) a.family = family;
    if (references) a.references = references;
    actions[i] = a;
  };
  const images = inventory.images;
  for (let i = 0; i < images.length; i++) {
    const image = images[i] as ImageRecord;
    if (image.ownerId !== inventory.accountId) {
      keep(i, image, 'not-owned', `owned by ${image.ownerId || 'unknown'}`);
      continue;
    }
    const backup = backupSignal(image);
    if (backup) {
      keep(i, image, 'backup-owned', backup);
      continue;
    }
    if (image.state === 'deregistered') {
      keep(i, image, 'deregistered', 'already deregistered');
      continue;
    }
    const scope = inScope(image);
    if (!scope) keep(i, image, 'not-in-scope', 'the policy selector does not cover it');
    else if (isRetained(image.tags)) keep(i, image, 'retained', `tagged ${TAG.retain}=true`, scope);
    else if (image.deregistrationProtection)
      keep(i, image, 'deregistration-protected', 'deregistration protection is on', scope);
    else if (IN_FLUX.has(image.state)) keep(i, image, 'in-progress', `state ${image.state}`, scope);
    else if (!retention.enabled) keep(i, image, 'retention-disabled', 'retention.enabled is false', scope);
    else if (retention[scope].deprecateAfterDays === undefined && retention[scope].deregisterAfterDays === undefined) {
      keep(i, image, 'no-rule', `retention.${scope} sets neither deprecateAfterDays nor deregisterAfterDays`, scope);
    } else {
      const created = parseTime(image.creationDate);
      if (Number.isFinite(created)) pending.push({ index: i, image, scope, created, family: '' });
      else {
        warnings.push(`${image.imageId}: creation date "${image.creationDate}" is not a date; kept`);
        keep(i, image, 'unknown-age', `creation date "${image.creationDate}" is not a date`, scope);
      }
    }
  }

  // Families, per scope: the family tag's value, else the name without its version suffix.
  const families = new Map<string, Candidate[]>();
  for (const scope of ['sources', 'replicas'] as const) {
    const tag = retention[scope].family.tag;
    const members = pending.filter((p) => p.scope === scope);
    if (tag && members.length > 0) {
      const missing = members.filter((p) => p.image.tags[tag] === undefined);
      if (missing.length === members.length) {
        errors.push(
          `retention.${scope}.family.tag: no image in scope carries the tag "${tag}" (${plural(members.length, 'image')}); none of them is deprecated or removed until the tag or the policy is fixed`,
        );
        for (const p of members)
          keep(p.index, p.image, 'family-tag-unknown', `family tag "${tag}" is on no image in scope`, scope);
        continue;
      }
      if (missing.length > 0) {
        warnings.push(
          `retention.${scope}.family.tag "${tag}" is missing on ${missing.length} image(s), grouped by name instead: ${examples(missing.map((p) => p.image.imageId))}`,
        );
      }
    }
    const prefix = `${scope}|`;
    for (const p of members) {
      const value = tag ? p.image.tags[tag] : undefined;
      p.family = value !== undefined ? `tag:${value}` : `name:${familyName(p.image.name)}`;
      const key = prefix + p.family;
      const list = families.get(key);
      if (list) list.push(p);
      else families.set(key, [p]);
    }
  }

  // The newest keepLatest launchable images of each family, whatever else protects them.
  const latest = new Uint8Array(images.length);
  for (const [key, members] of families) {
    const n = retention[key.startsWith('sources|') ? 'sources' : 'replicas'].keepLatest;
    if (n === 0) continue;
    for (const p of newest(members, n)) latest[p.index] = 1;
  }

  const protectInUse = retention.protectInUse;
  const liveSources = inventory.sources;
  const removed = new Uint8Array(images.length);
  const toRemove: number[] = [];
  for (const p of pending) {
    const { image, scope, created, index, family } = p;
    if (actions[index]) continue; // family-tag-unknown
    const rule: RetentionScope = retention[scope];
    const refs = protectInUse ? inventory.references.get(image.imageId) : undefined;
    if (refs && refs.length > 0) {
      keep(index, image, 'referenced', `referenced by ${describeRefs(refs)}`, scope, family, refs);
      continue;
    }
    if (latest[index]) {
      keep(index, image, 'latest-in-family', `among the newest ${rule.keepLatest} of family ${family}`, scope, family);
      continue;
    }
    if (scope === 'replicas' && retention.keepReplicasOfLiveSources) {
      const srcId = image.tags[TAG.sourceImageId] ?? image.sourceImageId;
      const srcRegion = image.tags[TAG.sourceRegion] ?? image.sourceImageRegion;
      if (!srcId || !srcRegion || !liveSources || !liveSources.checkedRegions.includes(srcRegion)) {
        keep(
          index,
          image,
          'source-unknown',
          `source ${srcRegion ?? '?'}/${srcId ?? '?'} could not be checked`,
          scope,
          family,
        );
        continue;
      }
      if (liveSources.live.has(sourceKey(srcRegion, srcId))) {
        keep(index, image, 'live-source', `its source ${srcRegion}/${srcId} still exists`, scope, family);
        continue;
      }
    }
    const ageDays = (nowMs - created) / DAY_MS;
    const age = `${Math.floor(ageDays)} days old`;
    if (rule.deregisterAfterDays !== undefined && ageDays >= rule.deregisterAfterDays) {
      const a: DeregisterAction = {
        action: 'deregister',
        imageId: image.imageId,
        name: image.name,
        scope,
        family,
        detail: `${age}, past deregisterAfterDays ${rule.deregisterAfterDays}`,
        rootDeviceType: image.rootDeviceType,
        snapshots: [],
      };
      if (image.imageLocation) a.imageLocation = image.imageLocation;
      actions[index] = a;
      removed[index] = 1;
      toRemove.push(index);
      continue;
    }
    if (rule.deprecateAfterDays === undefined || ageDays < rule.deprecateAfterDays) {
      const next = rule.deprecateAfterDays ?? rule.deregisterAfterDays;
      keep(index, image, 'not-old-enough', `${age}, younger than ${next} days`, scope, family);
    } else if (image.state === 'disabled') {
      keep(index, image, 'already-deprecated', `${age}, disabled`, scope, family);
    } else if (image.deprecationTime && parseTime(image.deprecationTime) <= deprecateAtMs + DEPRECATION_SLACK_MS) {
      keep(index, image, 'already-deprecated', `${age}, deprecated since ${image.deprecationTime}`, scope, family);
    } else {
      actions[index] = {
        action: 'deprecate',
        imageId: image.imageId,
        name: image.name,
        scope,
        family,
        detail: `${age}, past deprecateAfterDays ${rule.deprecateAfterDays}`,
        deprecateAt,
      };
    }
  }

  // Snapshots of removed images: which ones a kept image also uses (AWS skips those), and their sizes.
  const keptSnapshots = new Set<string>();
  for (let i = 0; i < images.length; i++) {
    const image = images[i] as ImageRecord;
    if (removed[i] || image.state === 'deregistered') continue;
    for (const s of image.snapshots) keptSnapshots.add(s.snapshotId);
  }
  let expectedSnapshotGiB = 0;
  const counted = new Set<string>();
  for (const index of toRemove) {
    const action = actions[index] as DeregisterAction;
    const image = images[index] as ImageRecord;
    for (const s of image.snapshots) {
      const sizeGiB = inventory.snapshotSizes.get(s.snapshotId) ?? s.volumeSizeGiB ?? 0;
      const shared = keptSnapshots.has(s.snapshotId);
      action.snapshots.push({ snapshotId: s.snapshotId, sizeGiB, sharedWithKeptImage: shared });
      if (!shared && !counted.has(s.snapshotId)) {
        counted.add(s.snapshotId);
        expectedSnapshotGiB += sizeGiB;
      }
    }
  }

  // Bundles: one manifest can be registered as several images, and its parts must outlive every one of them. A
  // removal whose bundle a kept image names leaves it; of removals sharing one only with each other, the last deletes
  // it (apply starts removals in plan order, so a budget cut short never leaves a registered image without its bundle).
  const keptBundles = new Set<string>();
  for (let i = 0; i < images.length; i++) {
    const image = images[i] as ImageRecord;
    if (
      removed[i] ||
      image.state === 'deregistered' ||
      image.rootDeviceType !== 'instance-store' ||
      !image.imageLocation
    )
      continue;
    keptBundles.add(image.imageLocation.trim());
  }
  const claimed = new Set<string>();
  for (const index of toRemove.toReversed()) {
    const action = actions[index] as DeregisterAction;
    const location = action.rootDeviceType === 'instance-store' ? action.imageLocation?.trim() : undefined;
    if (!location) continue;
    if (keptBundles.has(location) || claimed.has(location)) action.keepBundle = true;
    else claimed.add(location);
  }

  return {
    region: inventory.region,
    accountId: inventory.accountId,
    now: new Date(nowMs).toISOString(),
    actions,
    errors,
    warnings,
    expectedSnapshotGiB,
  };
}

/** The n newest launchable members, newest first (ties: lower image id first); n is small, so no full sort. */
function newest(members: Candidate[], n: number): Candidate[] {
  const top: Candidate[] = [];
  const newer = (a: Candidate, b: Candidate): boolean =>
    a.created > b.created || (a.created === b.created && a.image.imageId < b.image.imageId);
  for (const p of members) {
    if (!LAUNCHABLE.has(p.image.state)) continue;
    if (top.length === n && !newer(p, top[n - 1] as Candidate)) continue;
    let k = Math.min(top.length, n - 1);
    top[k] = p;
    while (k > 0 && newer(p, top[k - 1] as Candidate)) {
      top[k] = top[k - 1] as Candidate;
      top[k - 1] = p;
      k--;
    }
  }
  return top;
}

/**
 * Which retention scope an image falls in, or undefined when the policy does not cover it.
 * - replicas: ami-dr's own copies (tagged ami-dr:role=replica). The selector's includes were applied to their
 *   source when they were made (and a tag deny list may have dropped the tags it names), so only its
 *   exclusions are applied again: exclusions can only narrow what retention touches.
 * - sources: every other owned image the selector covers.
 */
export function scopeMatcher(policy: Readonly<Policy>): (image: ImageRecord) => Scope | undefined {
  const selects = compileSelector(policy.selector);
  return (image) => {
    const replica = isReplica(image.tags);
    if (!selects(image, { exclusionsOnly: replica }).match) return undefined;
    return replica ? 'replicas' : 'sources';
  };
}

/**
 * AWS Backup's images cannot be deregistered through EC2 and belong to their backup plan. Signals, any one:
 * - `imageOwnerAlias` naming AWS Backup (`aws-backup-vault`: images in logically air-gapped vaults),
 * - an `aws:backup:*` tag (AWS Backup tags its AMIs with `aws:backup:source-resource`; `aws:` tags cannot be
 *   set by users, so this cannot be forged),
 * - the `AwsBackup_` name prefix AWS Backup gives the AMIs it creates.
 */
export function backupSignal(image: ImageRecord): string | undefined {
  if (image.imageOwnerAlias?.startsWith('aws-backup')) return `image owner alias ${image.imageOwnerAlias}`;
  for (const key of Object.keys(image.tags))
    if (key.startsWith('aws:backup:')) return `tagged ${key} (made by AWS Backup)`;
  if (image.name.startsWith('AwsBackup_')) return 'named AwsBackup_* (made by AWS Backup)';
  return undefined;
}

/**
 * The family an image belongs to by name: the name without its version suffix, i.e. without every trailing
 * token that follows a separator (`-`, `_`, `.`, space) and is a version, date or number:
 *   - starts with a digit, optionally after `v`/`V` (`1`, `2.3`, `20240101`, `1530`, `v2`, `01T15`, `00Z`),
 *   - or is a 7-40 character hex string with at least one digit (a commit hash: `a1b2c3d`).
 * `web-1.2.3` -> `web`; `app-20240101-1530` -> `app`; `ubuntu-22.04-amd64-20240101` -> `ubuntu-22.04-amd64`;
 * `web-v2` -> `web`. A name that is all version (`1.2.3`: what is left has no letter) is its own family.
 * A copy that replication had to name `web-1.2.3 (ami-… from us-east-1)`, its plain name being taken, belongs to the
 * family of its plain name: without that, every such copy would be a family of one and never age out.
 */
export function familyName(fullName: string): string {
  const name = fullName.replace(COPY_NAME_SUFFIX, '');
  let end = name.length;
  let stripped = false;
  for (;;) {
    let start = end;
    while (start > 0 && isAlnum(name.charCodeAt(start - 1))) start--;
    if (start === end || start === 0 || !isVersionToken(name, start, end)) break;
    let sep = start;
    while (sep > 0 && isSeparator(name.charCodeAt(sep - 1))) sep--;
    if (sep === start) break;
    end = sep;
    stripped = true;
  }
  if (!stripped) return name;
  const base = name.slice(0, end);
  return /[A-Za-z]/.test(base) ? base : name;
}

/** What replication appends to a copy's name when the plain name is taken (lib/domain/replication.ts copyName). */
const COPY_NAME_SUFFIX = / \(ami-[0-9a-f]+ from [a-z0-9-]+\)$/;

const isDigit = (c: number): boolean => c >= 48 && c <= 57;
const isLetter = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
const isAlnum = (c: number): boolean => isDigit(c) || isLetter(c);
const isHex = (c: number): boolean => isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
/** `-`, `_`, `.`, space. */
const isSeparator = (c: number): boolean => c === 45 || c === 95 || c === 46 || c === 32;

function isVersionToken(s: string, start: number, end: number): boolean {
  const first = s.charCodeAt(start);
  if (isDigit(first)) return true;
  if ((first === 118 || first === 86) && end - start > 1 && isDigit(s.charCodeAt(start + 1))) return true;
  const length = end - start;
  if (length < 7 || length > 40) return false;
  let digits = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (!isHex(c)) return false;
    if (isDigit(c)) digits++;
  }
  return digits > 0;
}

/**
 * DescribeImages' times (`2024-01-01T15:30:00.000Z`) read by hand: Date.parse is the planner's biggest cost at
 * 100,000 images. Anything else goes to Date.parse.
 */
export function parseTime(s: string): number {
  const c = (i: number): number => s.charCodeAt(i) - 48;
  if (
    s.length >= 20 &&
    s.charCodeAt(4) === 45 &&
    s.charCodeAt(7) === 45 &&
    s.charCodeAt(10) === 84 &&
    s.charCodeAt(s.length - 1) === 90
  ) {
    const year = c(0) * 1000 + c(1) * 100 + c(2) * 10 + c(3);
    const month = c(5) * 10 + c(6);
    const day = c(8) * 10 + c(9);
    const hour = c(11) * 10 + c(12);
    const minute = c(14) * 10 + c(15);
    const second = c(17) * 10 + c(18);
    let ms = 0;
    if (s.length === 24 && s.charCodeAt(19) === 46) ms = c(20) * 100 + c(21) * 10 + c(22);
    else if (s.length !== 20) return Date.parse(s);
    const t = Date.UTC(year, month - 1, day, hour, minute, second, ms);
    // Digits out of range (or not digits) make Date.UTC roll over; let Date.parse judge those.
    if (
      Number.isFinite(t) &&
      month >= 1 &&
      month <= 12 &&
      day >= 1 &&
      day <= 31 &&
      hour < 24 &&
      minute < 60 &&
      second < 60 &&
      year >= 1970
    )
      return t;
  }
  return Date.parse(s);
}

const REF_WORDS: Record<ImageReference['kind'], string> = {
  instance: 'instance',
  'launch-template': 'launch template',
  'launch-configuration': 'launch configuration',
  'auto-scaling-group': 'auto scaling group',
  fleet: 'fleet',
  'spot-fleet': 'spot fleet',
  'image-reference': 'resource',
};

function describeRefs(refs: readonly ImageReference[]): string {
  const shown = refs.slice(0, 3).map((r) => `${REF_WORDS[r.kind]} ${r.id}`);
  return refs.length > 3 ? `${shown.join(', ')} and ${refs.length - 3} more` : shown.join(', ');
}

function examples(ids: string[]): string {
  return ids.length > MAX_EXAMPLES ? `${ids.slice(0, MAX_EXAMPLES).join(', ')}, …` : ids.join(', ');
}
