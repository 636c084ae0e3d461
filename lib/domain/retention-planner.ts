import type { ImageRecord } from './image.ts';
import type { Policy, RetentionScope } from './policy.ts';
import { sourceKey, type ImageReference, type RetentionInventory } from './retention-inventory.ts';
import { binStayFor, type BinStay, type RecycleBinRule } from './recycle-bin.ts';
import { compileSelector } from './selector.ts';
import { TAG, isReplica, isRetained } from './tags.ts';
import { plural } from './text.ts';

/**
 * The retention planner: inventory + policy + now => one action per image, each with its reason and the rule that
 * decided it. Pure and deterministic (no clock, no I/O), so a dry-run is this plan printed and tests need nothing
 * but data.
 *
 * The decision is the table RETENTION_RULES: each row a small named rule (when it applies, the keep reason it
 * gives or the action it takes), evaluated in the table's order, first match wins; the action names its rule.
 * Adding a rule is adding a row (and a case in test/unit/retention/retention-rules.test.ts). The order, and why:
 *
 *   rule                      gives               when
 *   stage 'image': what the image alone says; these images are not ami-dr's to manage at all.
 *   not-owned                 not-owned           owned by another account: never ours to touch
 *   backup-owned              backup-owned        made by AWS Backup (see backupSignal): its backup plan owns it
 *   deregistered              deregistered        nothing left to do
 *   stage 'scope': the policy's scope (see scopeMatcher) and age. Explicit protections come before any age-based
 *   decision, and before the families are formed, so a protected image takes no keepLatest place.
 *   not-in-scope              not-in-scope        the selector does not cover it
 *   retained                  retained            tagged ami-dr:retain=true
 *   deregistration-protected  (same as the rule)  deregistration protection on
 *   in-progress               in-progress         pending / transient: not finished, its age means nothing yet
 *   retention-disabled        retention-disabled  retention.enabled is false
 *   no-rule                   no-rule             the scope sets neither deprecateAfterDays nor deregisterAfterDays
 *   unknown-age               unknown-age         creation date unreadable (and a warning): no age, no family rank
 *   stage 'family': the images no earlier rule decided form the families (the family tag's value, else the name
 *   without its version suffix) and are ranked in them; protections that hold whatever the age come first, so an
 *   image in use still takes its keepLatest place.
 *   family-tag-unknown        family-tag-unknown  the scope's family tag is on none of its images (and a plan error)
 *   referenced                referenced          in use (instances, launch templates, launch configurations, ASGs,
 *                                                 DescribeImageReferences), when protectInUse
 *   latest-in-family          latest-in-family    among the newest keepLatest available images of its family
 *   live-source               live-source         a replica (keepReplicasOfLiveSources) whose source still exists
 *   source-unknown            source-unknown      a replica (keepReplicasOfLiveSources), its source not looked up
 *   bundle-bucket-not-allowed (same as the rule)  instance-store, older than deregisterAfterDays, its bundle in a bucket
 *                                                 retention.bundleBuckets does not name (the role may not touch it)
 *   deregister-after-days     DEREGISTER          older than deregisterAfterDays (with its snapshots, or its S3
 *                                                 bundle unless another registered image names the same bundle)
 *   not-old-enough            not-old-enough      younger than every threshold the scope sets
 *   disabled                  already-deprecated  past deprecateAfterDays, and disabled
 *   already-deprecated        already-deprecated  past deprecateAfterDays, deprecated already (by a day after now)
 *   deprecate-after-days      DEPRECATE           past deprecateAfterDays: deprecated at `now` rounded up to a minute
 *
 * Rows must stay in stage order (checked): a stage's facts (scope, age, family) are worked out once, when the first
 * rule of that stage is reached, and a rule's decision records the facts known at its stage.
 */

export type Scope = 'sources' | 'replicas';

/**
 * What a rule looks at, and what the plan records with its decision: 'image' the image alone; 'scope' also its
 * scope and creation time; 'family' also its family and rank, among the images no earlier rule decided.
 */
export type RuleStage = 'image' | 'scope' | 'family';

/** An image as the rules see it; the fields of a later stage are unset before it. */
export interface Candidate {
  readonly index: number;
  readonly image: ImageRecord;
  /** Stage 'scope' on: undefined when the policy does not cover the image. */
  scope: Scope | undefined;
  /** Stage 'scope' on: epoch ms, NaN when the creation date is not a date. */
  created: number;
  /** Stage 'family' on: undefined when its scope's family tag is on none of its images. */
  family: string | undefined;
  /** Stage 'family' on: among the newest keepLatest launchable images of its family. */
  latest: boolean;
}

export interface RuleContext {
  readonly accountId: string;
  readonly retention: Readonly<Policy>['retention'];
  readonly nowMs: number;
  /** `now` rounded up to the minute: the time deprecations are set for. */
  readonly deprecateAtMs: number;
  readonly references: RetentionInventory['references'];
  readonly sources: RetentionInventory['sources'];
  /** Scopes whose family tag is on none of their images (filled at stage 'family'). */
  readonly familyTagUnknown: ReadonlySet<Scope>;
}

/** Why the rule applies, in words a person reads in the report; with what else the plan should carry. */
export type Finding = string | { detail: string; references?: readonly ImageReference[]; warning?: string };

export interface RetentionRule<N extends string = string, G extends string = string> {
  /** Named in the plan and the report (`rule`). */
  readonly name: N;
  /** The keep reason it gives, or the action it takes (`deprecate`, `deregister`). */
  readonly gives: G;
  readonly stage: RuleStage;
  /** When it applies: the finding; undefined when it does not. Rules earlier in the table have not applied. */
  readonly when: (c: Candidate, ctx: RuleContext) => Finding | undefined;
}

const rule = <const N extends string, const G extends string>(r: RetentionRule<N, G>): RetentionRule<N, G> => r;

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

const settingsOf = (c: Candidate, ctx: RuleContext): RetentionScope | undefined =>
  c.scope === undefined ? undefined : ctx.retention[c.scope];
const ageDays = (c: Candidate, ctx: RuleContext): number => (ctx.nowMs - c.created) / DAY_MS;
const ageText = (c: Candidate, ctx: RuleContext): string => `${Math.floor(ageDays(c, ctx))} days old`;
const pastDeprecation = (c: Candidate, ctx: RuleContext): boolean => {
  const days = settingsOf(c, ctx)?.deprecateAfterDays;
  return days !== undefined && ageDays(c, ctx) >= days;
};

/** For a replica when keepReplicasOfLiveSources: its source, and whether the inventory looked it up. */
type ReplicaSource =
  | { checked: false; id: string | undefined; region: string | undefined }
  | { checked: true; id: string; region: string; live: boolean };
function replicaSource(c: Candidate, ctx: RuleContext): ReplicaSource | undefined {
  if (c.scope !== 'replicas' || !ctx.retention.keepReplicasOfLiveSources) return undefined;
  const id = c.image.tags[TAG.sourceImageId] ?? c.image.sourceImageId;
  const region = c.image.tags[TAG.sourceRegion] ?? c.image.sourceImageRegion;
  if (!id || !region || !ctx.sources || !ctx.sources.checkedRegions.includes(region))
    return { checked: false, id, region };
  return { checked: true, id, region, live: ctx.sources.live.has(sourceKey(region, id)) };
}

/** The bucket of an instance-store image's bundle (`bucket/prefix/image.manifest.xml`); '' when there is none. */
const bundleBucket = (imageLocation: string | undefined): string => (imageLocation ?? '').trim().split('/')[0] ?? '';

/** The retention rules, in the order they are evaluated (see the top of this file for the order and why). */
export const RETENTION_RULES = [
  rule({
    name: 'not-owned',
    gives: 'not-owned',
    stage: 'image',
    when: ({ image }, ctx) => (image.ownerId !== ctx.accountId ? `owned by ${image.ownerId || 'unknown'}` : undefined),
  }),
  rule({ name: 'backup-owned', gives: 'backup-owned', stage: 'image', when: ({ image }) => backupSignal(image) }),
  rule({
    name: 'deregistered',
    gives: 'deregistered',
    stage: 'image',
    when: ({ image }) => (image.state === 'deregistered' ? 'already deregistered' : undefined),
  }),
  rule({
    name: 'not-in-scope',
    gives: 'not-in-scope',
    stage: 'scope',
    when: (c) => (c.scope === undefined ? 'the policy selector does not cover it' : undefined),
  }),
  rule({
    name: 'retained',
    gives: 'retained',
    stage: 'scope',
    when: ({ image }) => (isRetained(image.tags) ? `tagged ${TAG.retain}=true` : undefined),
  }),
  rule({
    name: 'deregistration-protected',
    gives: 'deregistration-protected',
    stage: 'scope',
    // Unless the scope releases protection (a DR account's retention of its copies), which it turns off first.
    when: ({ image, scope }, ctx) =>
      image.deregistrationProtection && !(scope && ctx.retention[scope].releaseProtection)
        ? 'deregistration protection is on'
        : undefined,
  }),
  rule({
    name: 'in-progress',
    gives: 'in-progress',
    stage: 'scope',
    when: ({ image }) => (IN_FLUX.has(image.state) ? `state ${image.state}` : undefined),
  }),
  rule({
    name: 'retention-disabled',
    gives: 'retention-disabled',
    stage: 'scope',
    when: (_c, ctx) => (ctx.retention.enabled ? undefined : 'retention.enabled is false'),
  }),
  rule({
    name: 'no-rule',
    gives: 'no-rule',
    stage: 'scope',
    when: (c, ctx) => {
      const s = settingsOf(c, ctx);
      return s && s.deprecateAfterDays === undefined && s.deregisterAfterDays === undefined
        ? `retention.${c.scope} sets neither deprecateAfterDays nor deregisterAfterDays`
        : undefined;
    },
  }),
  rule({
    name: 'unknown-age',
    gives: 'unknown-age',
    stage: 'scope',
    when: ({ image, created }) =>
      Number.isFinite(created)
        ? undefined
        : {
            detail: `creation date "${image.creationDate}" is not a date`,
            warning: `${image.imageId}: creation date "${image.creationDate}" is not a date; kept`,
          },
  }),
  rule({
    name: 'family-tag-unknown',
    gives: 'family-tag-unknown',
    stage: 'family',
    when: (c, ctx) =>
      c.scope !== undefined && ctx.familyTagUnknown.has(c.scope)
        ? `family tag "${ctx.retention[c.scope].family.tag}" is on no image in scope`
        : undefined,
  }),
  rule({
    name: 'referenced',
    gives: 'referenced',
    stage: 'family',
    when: ({ image }, ctx) => {
      const refs = ctx.retention.protectInUse ? ctx.references.get(image.imageId) : undefined;
      return refs && refs.length > 0 ? { detail: `referenced by ${describeRefs(refs)}`, references: refs } : undefined;
    },
  }),
  rule({
    name: 'latest-in-family',
    gives: 'latest-in-family',
    stage: 'family',
    when: (c, ctx) =>
      c.latest ? `among the newest ${settingsOf(c, ctx)?.keepLatest} of family ${c.family}` : undefined,
  }),
  rule({
    name: 'live-source',
    gives: 'live-source',
    stage: 'family',
    when: (c, ctx) => {
      const source = replicaSource(c, ctx);
      if (!source?.checked || !source.live) return undefined;
      // A source this same run removes still exists while the run is planned: the copy waits for a later run, so
      // that what a run removes is exactly what its plan, made before anything changed, listed.
      return ctx.sources?.removedInRun?.has(sourceKey(source.region, source.id))
        ? `its source ${source.region}/${source.id} is removed in this run; this copy goes in a later run`
        : `its source ${source.region}/${source.id} still exists`;
    },
  }),
  rule({
    name: 'source-unknown',
    gives: 'source-unknown',
    stage: 'family',
    when: (c, ctx) => {
      const source = replicaSource(c, ctx);
      return source && !source.checked
        ? `source ${source.region ?? '?'}/${source.id ?? '?'} could not be checked`
        : undefined;
    },
  }),
  rule({
    name: 'bundle-bucket-not-allowed',
    gives: 'bundle-bucket-not-allowed',
    stage: 'family',
    when: (c, ctx) => {
      const days = settingsOf(c, ctx)?.deregisterAfterDays;
      if (c.image.rootDeviceType !== 'instance-store' || days === undefined || ageDays(c, ctx) < days) return undefined;
      const bucket = bundleBucket(c.image.imageLocation);
      return (ctx.retention.bundleBuckets ?? []).includes(bucket)
        ? undefined
        : `bundle bucket not allowed: ${bucket || '(no image location)'} is not in retention.bundleBuckets`;
    },
  }),
  rule({
    name: 'deregister-after-days',
    gives: 'deregister',
    stage: 'family',
    when: (c, ctx) => {
      const days = settingsOf(c, ctx)?.deregisterAfterDays;
      return days !== undefined && ageDays(c, ctx) >= days
        ? `${ageText(c, ctx)}, past deregisterAfterDays ${days}`
        : undefined;
    },
  }),
  rule({
    name: 'not-old-enough',
    gives: 'not-old-enough',
    stage: 'family',
    when: (c, ctx) => {
      const s = settingsOf(c, ctx);
      const first = Math.min(s?.deprecateAfterDays ?? Infinity, s?.deregisterAfterDays ?? Infinity);
      return s && ageDays(c, ctx) < first
        ? `${ageText(c, ctx)}, younger than ${s.deprecateAfterDays ?? s.deregisterAfterDays} days`
        : undefined;
    },
  }),
  rule({
    name: 'disabled',
    gives: 'already-deprecated',
    stage: 'family',
    when: (c, ctx) =>
      pastDeprecation(c, ctx) && c.image.state === 'disabled' ? `${ageText(c, ctx)}, disabled` : undefined,
  }),
  rule({
    name: 'already-deprecated',
    gives: 'already-deprecated',
    stage: 'family',
    when: (c, ctx) => {
      const since = c.image.deprecationTime;
      return pastDeprecation(c, ctx) && since && parseTime(since) <= ctx.deprecateAtMs + DEPRECATION_SLACK_MS
        ? `${ageText(c, ctx)}, deprecated since ${since}`
        : undefined;
    },
  }),
  rule({
    name: 'deprecate-after-days',
    gives: 'deprecate',
    stage: 'family',
    when: (c, ctx) =>
      pastDeprecation(c, ctx)
        ? `${ageText(c, ctx)}, past deprecateAfterDays ${settingsOf(c, ctx)?.deprecateAfterDays}`
        : undefined,
  }),
] as const;

export type AnyRetentionRule = (typeof RETENTION_RULES)[number];
export type RuleName = AnyRetentionRule['name'];
type Acting = 'deprecate' | 'deregister';
/**
 * Not a row of the table: an image a rule would deprecate or remove, held back by the caller's limit (see PlanLimit:
 * a saved plan that did not list it). The action keeps the name of the rule that would have acted.
 */
export const HELD_BACK = 'held-back';
export type KeepReason = Exclude<AnyRetentionRule['gives'], Acting> | typeof HELD_BACK;
const isKeepReason = (g: AnyRetentionRule['gives']): g is Exclude<KeepReason, typeof HELD_BACK> =>
  g !== 'deprecate' && g !== 'deregister';
/** Every keep reason, in the order of the rules that give them (the report's order of reasons), then held-back. */
export const KEEP_REASONS: readonly KeepReason[] = [
  ...new Set(RETENTION_RULES.map((r) => r.gives).filter(isKeepReason)),
  HELD_BACK,
];

/**
 * The most the plan may do to one image, whatever the rules decide: `keep` (do nothing) or `deprecate` (a removal
 * becomes a deprecation). Applying a saved plan sets these so that it never does more than it listed; the snapshots
 * and bundles are then planned with the images held back counted as kept.
 */
export interface PlanLimit {
  most: 'keep' | 'deprecate';
  /** Why, for the kept action's detail. */
  detail: string;
}

export interface PlanOptions {
  /** By image id; images absent are not limited. */
  limits?: ReadonlyMap<string, PlanLimit>;
}

interface ActionBase {
  imageId: string;
  name: string;
  /** The row of RETENTION_RULES that decided. */
  rule: RuleName;
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
  /** A Recycle Bin rule retains it once deleted: still billed for the rule's period. */
  recycleBin?: BinStay;
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
  /** EBS-backed: a Recycle Bin rule retains the image once deregistered (restorable for the rule's period). */
  recycleBin?: BinStay;
  /** Deregistration protection is on and the scope releases it: turned off just before deregistering. */
  releaseProtection?: boolean;
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
  /** Of expectedSnapshotGiB, what Recycle Bin rules retain: freed only when their periods end. */
  expectedBinGiB?: number;
  /** The region's Recycle Bin rules the plan took into account. */
  recycleBinRules?: readonly RecycleBinRule[];
}

export class RetentionPlanError extends Error {
  override name = 'RetentionPlanError';
}

const STAGES: readonly RuleStage[] = ['image', 'scope', 'family'];

/** The table's rows by stage; refuses a table whose stages are out of order. */
function byStage(rules: readonly AnyRetentionRule[]): Record<RuleStage, AnyRetentionRule[]> {
  const out: Record<RuleStage, AnyRetentionRule[]> = { image: [], scope: [], family: [] };
  let last = 0;
  for (const r of rules) {
    const at = STAGES.indexOf(r.stage);
    if (at < last)
      throw new RetentionPlanError(`retention rule ${r.name} (stage ${r.stage}) comes after a later stage`);
    last = at;
    out[r.stage].push(r);
  }
  return out;
}
byStage(RETENTION_RULES); // a table out of stage order fails when the module loads, not at the first plan

/** `rules`: the table to decide with; RETENTION_RULES, unless a test reorders it to show that its order decides. */
export function planRetention(
  inventory: RetentionInventory,
  policy: Readonly<Policy>,
  now: number | Date,
  rules: readonly AnyRetentionRule[] = RETENTION_RULES,
  options: PlanOptions = {},
): RetentionPlan {
  const nowMs = typeof now === 'number' ? now : now.getTime();
  checkInputs(inventory, policy, nowMs);
  const stages = byStage(rules);
  const inScope = scopeMatcher(policy);
  const familyTagUnknown = new Set<Scope>();
  const ctx: RuleContext = {
    accountId: inventory.accountId,
    retention: policy.retention,
    nowMs,
    deprecateAtMs: Math.ceil(nowMs / MINUTE_MS) * MINUTE_MS,
    references: inventory.references,
    sources: inventory.sources,
    familyTagUnknown,
  };
  const warnings: string[] = [...inventory.warnings];
  const errors: string[] = [];
  const images = inventory.images;
  const actions: RetentionAction[] = new Array(images.length);
  const decide = (c: Candidate, stage: readonly AnyRetentionRule[]): boolean => {
    for (const r of stage) {
      const finding = r.when(c, ctx);
      if (finding === undefined) continue;
      const { detail, references, warning } = typeof finding === 'string' ? { detail: finding } : finding;
      if (warning) warnings.push(warning);
      const action = toAction(r, c, detail, references, ctx);
      const limit = options.limits?.get(c.image.imageId);
      actions[c.index] = limit ? limited(action, limit, c.image, ctx) : action;
      return true;
    }
    return false;
  };

  // Stages 'image' and 'scope', image by image; what they leave undecided makes up the families.
  const undecided: Candidate[] = [];
  for (let i = 0; i < images.length; i++) {
    const image = images[i] as ImageRecord;
    const c: Candidate = { index: i, image, scope: undefined, created: NaN, family: undefined, latest: false };
    if (decide(c, stages.image)) continue;
    c.scope = inScope(image);
    c.created = parseTime(image.creationDate);
    if (!decide(c, stages.scope)) undecided.push(c);
  }
  rankFamilies(undecided, policy.retention, familyTagUnknown, errors, warnings);
  for (const c of undecided) {
    if (!decide(c, stages.family)) throw new RetentionPlanError(`no retention rule decided ${c.image.imageId}`);
  }

  // Removals in plan order, and the images that stay registered (whose snapshots and bundles must stay).
  const removals: Removal[] = [];
  const kept: ImageRecord[] = [];
  actions.forEach((action, i) => {
    const image = images[i] as ImageRecord;
    if (action.action === 'deregister') removals.push({ action, image });
    else if (image.state !== 'deregistered') kept.push(image);
  });
  const { expectedSnapshotGiB, expectedBinGiB } = planSnapshots(removals, kept, inventory);
  planBundles(removals, kept);
  return {
    region: inventory.region,
    accountId: inventory.accountId,
    now: new Date(nowMs).toISOString(),
    actions,
    errors,
    warnings,
    expectedSnapshotGiB,
    expectedBinGiB,
    ...(inventory.recycleBinRules?.length ? { recycleBinRules: inventory.recycleBinRules } : {}),
  };
}

interface Removal {
  action: DeregisterAction;
  image: ImageRecord;
}

function checkInputs(inventory: RetentionInventory, policy: Readonly<Policy>, nowMs: number): void {
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
}

/** A rule's decision as the plan's action, with the facts known at the rule's stage. */
function toAction(
  r: AnyRetentionRule,
  c: Candidate,
  detail: string,
  references: readonly ImageReference[] | undefined,
  ctx: RuleContext,
): RetentionAction {
  const { image, scope, family } = c;
  const base = { imageId: image.imageId, name: image.name, rule: r.name };
  const gives = r.gives;
  if (!isKeepReason(gives)) {
    if (!scope) throw new RetentionPlanError(`retention rule ${r.name} acts on ${image.imageId}, which is in no scope`);
    const at = { ...base, scope, ...(family !== undefined ? { family } : {}), detail };
    if (gives === 'deprecate')
      return { action: 'deprecate', ...at, deprecateAt: new Date(ctx.deprecateAtMs).toISOString() };
    const a: DeregisterAction = {
      action: 'deregister',
      ...at,
      rootDeviceType: image.rootDeviceType,
      snapshots: [],
    };
    if (image.imageLocation) a.imageLocation = image.imageLocation;
    if (image.deregistrationProtection) a.releaseProtection = true;
    return a;
  }
  const a: KeepAction = { action: 'keep', ...base, reason: gives, detail };
  if (scope) a.scope = scope;
  if (family !== undefined) a.family = family;
  if (references) a.references = references;
  return a;
}

/** An action within its limit: a removal limited to a deprecation deprecates; anything beyond the limit is held back. */
function limited(action: RetentionAction, limit: PlanLimit, image: ImageRecord, ctx: RuleContext): RetentionAction {
  if (action.action === 'keep' || (limit.most === 'deprecate' && action.action === 'deprecate')) return action;
  const { imageId, name, rule, scope, family, detail } = action;
  const base = { imageId, name, rule, scope, ...(family !== undefined ? { family } : {}) };
  // Deprecated already (or disabled): the deprecation it is limited to is done; setting it again would move it.
  const deprecated = image.deprecationTime !== undefined || image.state === 'disabled';
  if (limit.most === 'deprecate' && !deprecated)
    return {
      action: 'deprecate',
      ...base,
      detail: `${detail}; ${limit.detail}`,
      deprecateAt: new Date(ctx.deprecateAtMs).toISOString(),
    };
  return { action: 'keep', ...base, reason: HELD_BACK, detail: `${limit.detail} (${detail})` };
}

/**
 * Families, per scope: the family tag's value, else the name without its version suffix; then the newest keepLatest
 * launchable images of each are marked `latest`, whatever else protects them. A scope whose family tag is on none of
 * its images gets no families, and a plan error.
 */
function rankFamilies(
  undecided: Candidate[],
  retention: Readonly<Policy>['retention'],
  familyTagUnknown: Set<Scope>,
  errors: string[],
  warnings: string[],
): void {
  for (const scope of ['sources', 'replicas'] as const) {
    const { tag } = retention[scope].family;
    const members = undecided.filter((c) => c.scope === scope);
    if (tag && members.length > 0) {
      const missing = members.filter((c) => c.image.tags[tag] === undefined);
      if (missing.length === members.length) {
        errors.push(
          `retention.${scope}.family.tag: no image in scope carries the tag "${tag}" (${plural(members.length, 'image')}); none of them is deprecated or removed until the tag or the policy is fixed`,
        );
        familyTagUnknown.add(scope);
        continue;
      }
      if (missing.length > 0) {
        warnings.push(
          `retention.${scope}.family.tag "${tag}" is missing on ${missing.length} image(s), grouped by name instead: ${examples(missing.map((c) => c.image.imageId))}`,
        );
      }
    }
    const families = new Map<string, Candidate[]>();
    for (const c of members) {
      const value = tag ? c.image.tags[tag] : undefined;
      c.family = value !== undefined ? `tag:${value}` : `name:${familyName(c.image.name)}`;
      const list = families.get(c.family);
      if (list) list.push(c);
      else families.set(c.family, [c]);
    }
    const n = retention[scope].keepLatest;
    if (n === 0) continue;
    for (const family of families.values()) for (const c of newest(family, n)) c.latest = true;
  }
}

/**
 * Fills in each removal's snapshots: which ones a kept image also uses (AWS skips those), and their sizes. Returns
 * the GiB the removals should free.
 */
function planSnapshots(
  removals: readonly Removal[],
  kept: readonly ImageRecord[],
  inventory: RetentionInventory,
): { expectedSnapshotGiB: number; expectedBinGiB: number } {
  const rules = inventory.recycleBinRules ?? [];
  const keptSnapshots = new Set<string>();
  for (const image of kept) for (const s of image.snapshots) keptSnapshots.add(s.snapshotId);
  let expectedSnapshotGiB = 0;
  let expectedBinGiB = 0;
  const counted = new Set<string>();
  for (const { action, image } of removals) {
    const imageStay = image.rootDeviceType === 'ebs' ? binStayFor(rules, 'EC2_IMAGE', image.tags) : undefined;
    if (imageStay) action.recycleBin = imageStay;
    for (const s of image.snapshots) {
      const sizeGiB = inventory.snapshotSizes.get(s.snapshotId) ?? s.volumeSizeGiB ?? 0;
      const shared = keptSnapshots.has(s.snapshotId);
      const stay = binStayFor(rules, 'EBS_SNAPSHOT', inventory.snapshotTags?.get(s.snapshotId) ?? {});
      action.snapshots.push({
        snapshotId: s.snapshotId,
        sizeGiB,
        sharedWithKeptImage: shared,
        ...(stay ? { recycleBin: stay } : {}),
      });
      if (!shared && !counted.has(s.snapshotId)) {
        counted.add(s.snapshotId);
        expectedSnapshotGiB += sizeGiB;
        if (stay) expectedBinGiB += sizeGiB;
      }
    }
  }
  return { expectedSnapshotGiB, expectedBinGiB };
}

/**
 * Bundles: one manifest can be registered as several images, and its parts must outlive every one of them. A
 * removal whose bundle a kept image names leaves it; of removals sharing one only with each other, the last deletes
 * it (apply starts removals in plan order, so a budget cut short never leaves a registered image without its bundle).
 */
function planBundles(removals: readonly Removal[], kept: readonly ImageRecord[]): void {
  const keptBundles = new Set<string>();
  for (const image of kept) {
    if (image.rootDeviceType === 'instance-store' && image.imageLocation) keptBundles.add(image.imageLocation.trim());
  }
  const claimed = new Set<string>();
  for (const { action } of removals.toReversed()) {
    const location = action.rootDeviceType === 'instance-store' ? action.imageLocation?.trim() : undefined;
    if (!location) continue;
    if (keptBundles.has(location) || claimed.has(location)) action.keepBundle = true;
    else claimed.add(location);
  }
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
