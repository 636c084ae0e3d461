import { createHash } from 'node:crypto';
import * as z from 'zod';
import type { RetentionInventory } from './retention-inventory.ts';
import type { PlanLimit, RetentionAction, RetentionPlan } from './retention-planner.ts';

/**
 * A retention plan saved to a file (`ami-dr retention plan --output plan.json`) and applied later
 * (`ami-dr retention apply --plan plan.json`), as terraform does: what is applied is what was reviewed, never more.
 *
 * The account moves on between the two, so applying re-checks every saved action against a fresh plan of the account
 * as it is then (the intersection rule, `planLimits`): a saved deprecation goes ahead if the fresh plan deprecates or
 * removes the image, a saved removal only if the fresh plan removes it; anything else is skipped with the fresh plan's
 * reason, and nothing the saved plan did not list is done. Pure: the workflow takes the inventories and plans.
 */

export const SAVED_PLAN_SCHEMA_VERSION = 1;

export class SavedPlanError extends Error {
  override name = 'SavedPlanError';
}

/** The saved plan belongs to another account, policy or region set: refused as a whole. */
export class SavedPlanRefusedError extends Error {
  override name = 'SavedPlanRefusedError';
}

const savedActionSchema = z.object({
  imageId: z.string().regex(/^ami-[0-9a-f]+$/),
  name: z.string(),
  action: z.enum(['keep', 'deprecate', 'deregister']),
  rule: z.string(),
  /** Keep actions: why. */
  reason: z.string().optional(),
  detail: z.string(),
  deprecateAt: z.string().optional(),
  /** Removals: the snapshots DeregisterImage deletes with the image (those no kept image shares). */
  snapshots: z.array(z.string()).optional(),
  /** Removals of instance-store images: the bundle's manifest, when the removal deletes the bundle. */
  bundle: z.string().optional(),
});
export type SavedAction = z.infer<typeof savedActionSchema>;

const savedRegionSchema = z.object({
  region: z.string().min(1),
  /** inventoryFingerprint of the inventory the region's plan came from. */
  fingerprint: z.string().min(1),
  actions: z.array(savedActionSchema),
  errors: z.array(z.string()),
  warnings: z.array(z.string()),
});
export type SavedRegionPlan = z.infer<typeof savedRegionSchema>;

export const savedPlanSchema = z.object({
  schemaVersion: z.literal(SAVED_PLAN_SCHEMA_VERSION),
  policy: z.object({ name: z.string(), version: z.string().min(1) }),
  accountId: z.string().regex(/^\d{12}$/),
  regions: z.array(z.string().min(1)).min(1),
  /** The time the plan was made for (ages measured to it), ISO 8601. */
  now: z.iso.datetime(),
  /** A hash of every region's inventory fingerprint. */
  fingerprint: z.string().min(1),
  plans: z.array(savedRegionSchema),
});
export type SavedPlan = z.infer<typeof savedPlanSchema>;

/**
 * A short hash of what a region's plan rests on: each image's id, state and snapshot ids. Equal fingerprints mean
 * the images did not change between the plan and its apply (references and tags may have: apply re-checks anyway).
 */
export function inventoryFingerprint(inventory: Pick<RetentionInventory, 'region' | 'images'>): string {
  const lines = inventory.images
    .map((i) => `${i.imageId} ${i.state} ${i.snapshots.map((s) => s.snapshotId).join(',')}`)
    .sort();
  return hash([inventory.region, ...lines].join('\n'));
}

export interface SavedPlanInput {
  policy: { name: string; version: string };
  accountId: string;
  now: string;
  regions: readonly { plan: RetentionPlan; fingerprint: string }[];
}

export function toSavedPlan(input: SavedPlanInput): SavedPlan {
  const plans = input.regions.map(({ plan, fingerprint }) => ({
    region: plan.region,
    fingerprint,
    actions: plan.actions.map(savedAction),
    errors: [...plan.errors],
    warnings: [...plan.warnings],
  }));
  return {
    schemaVersion: SAVED_PLAN_SCHEMA_VERSION,
    policy: { ...input.policy },
    accountId: input.accountId,
    regions: plans.map((p) => p.region),
    now: input.now,
    fingerprint: hash(plans.map((p) => `${p.region} ${p.fingerprint}`).join('\n')),
    plans,
  };
}

function savedAction(a: RetentionAction): SavedAction {
  const base = { imageId: a.imageId, name: a.name, action: a.action, rule: a.rule, detail: a.detail };
  if (a.action === 'keep') return { ...base, reason: a.reason };
  if (a.action === 'deprecate') return { ...base, deprecateAt: a.deprecateAt };
  return {
    ...base,
    snapshots: a.snapshots.filter((s) => !s.sharedWithKeptImage).map((s) => s.snapshotId),
    ...(a.rootDeviceType === 'instance-store' && a.imageLocation && !a.keepBundle ? { bundle: a.imageLocation } : {}),
  };
}

/** Reads a saved plan; a file that is not one is a SavedPlanError with one line saying what is wrong. */
export function parseSavedPlan(text: string, source = 'the plan file'): SavedPlan {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new SavedPlanError(`${source} is not JSON: ${(error as Error).message}`);
  }
  const version = (document as { schemaVersion?: unknown } | null)?.schemaVersion;
  if (typeof document === 'object' && document !== null && version !== SAVED_PLAN_SCHEMA_VERSION) {
    throw new SavedPlanError(
      `${source} has schemaVersion ${JSON.stringify(version ?? null)}; this ami-dr reads schemaVersion ${SAVED_PLAN_SCHEMA_VERSION}`,
    );
  }
  const result = savedPlanSchema.safeParse(document);
  if (!result.success) {
    const issue = result.error.issues[0];
    const at = issue && issue.path.length > 0 ? issue.path.join('.') : '(top level)';
    throw new SavedPlanError(`${source} is not an ami-dr retention plan: ${at}: ${issue?.message ?? 'invalid'}`);
  }
  const plan = result.data;
  const planned = plan.plans.map((p) => p.region);
  if (planned.join() !== plan.regions.join())
    throw new SavedPlanError(`${source} is not consistent: regions ${plan.regions.join(', ')}, plans for ${planned}`);
  return plan;
}

export interface SavedPlanTarget {
  accountId: string;
  policy: { name: string; version: string };
  /** The regions the policy governs. */
  regions: readonly string[];
}

/** Refuses, as a whole, a plan made for another account, another policy or policy version, or foreign regions. */
export function checkSavedPlan(saved: SavedPlan, target: SavedPlanTarget): void {
  if (saved.accountId !== target.accountId)
    throw new SavedPlanRefusedError(
      `the plan was made for account ${saved.accountId}, not ${target.accountId}: nothing applied`,
    );
  if (saved.policy.name !== target.policy.name || saved.policy.version !== target.policy.version)
    throw new SavedPlanRefusedError(
      `the plan was made with policy ${saved.policy.name} version ${saved.policy.version}, not ${target.policy.name} version ${target.policy.version}: nothing applied; make a new plan`,
    );
  const foreign = saved.regions.filter((r) => !target.regions.includes(r));
  if (foreign.length > 0)
    throw new SavedPlanRefusedError(
      `the plan names regions the policy does not govern (${foreign.join(', ')}): nothing applied`,
    );
}

export const NOT_IN_SAVED_PLAN = 'not in the saved plan';

/**
 * The intersection rule, as limits for re-planning the region (planRetention's `limits`): for every image the
 * fresh plan would deprecate or remove, the most the saved plan allows.
 *   saved      fresh        applied
 *   deprecate  deprecate    deprecate
 *   deprecate  deregister   deprecate (limited)
 *   deregister deregister   deregister
 *   deregister deprecate    nothing (held back)
 *   -          either       nothing (held back: the saved plan did not list it)
 * A saved action whose image the fresh plan keeps needs no limit: the fresh plan does nothing to it.
 */
export function planLimits(saved: SavedRegionPlan, fresh: RetentionPlan): Map<string, PlanLimit> {
  const wanted = new Map(saved.actions.filter((a) => a.action !== 'keep').map((a) => [a.imageId, a.action]));
  const limits = new Map<string, PlanLimit>();
  for (const a of fresh.actions) {
    if (a.action === 'keep') continue;
    const s = wanted.get(a.imageId);
    if (s === undefined) limits.set(a.imageId, { most: 'keep', detail: NOT_IN_SAVED_PLAN });
    else if (s === 'deprecate' && a.action === 'deregister')
      limits.set(a.imageId, { most: 'deprecate', detail: 'the saved plan only deprecates it' });
    else if (s === 'deregister' && a.action === 'deprecate')
      limits.set(a.imageId, {
        most: 'keep',
        detail: 'the saved plan removes it, but now it is only due for deprecation',
      });
  }
  return limits;
}

export interface SkippedAction {
  imageId: string;
  name: string;
  /** What the saved plan said to do. */
  action: 'deprecate' | 'deregister';
  /** The fresh plan's rule and keep reason (`gone`: the image is no longer in the account). */
  rule: string;
  reason: string;
  detail: string;
}

/** The saved plan's deprecations and removals that the plan applied (made with planLimits) does not carry out. */
export function skippedActions(saved: SavedRegionPlan, applied: RetentionPlan): SkippedAction[] {
  const now = new Map(applied.actions.map((a) => [a.imageId, a]));
  const skipped: SkippedAction[] = [];
  for (const s of saved.actions) {
    if (s.action === 'keep') continue;
    const a = now.get(s.imageId);
    if (a?.action === s.action) continue;
    const base = { imageId: s.imageId, name: s.name, action: s.action };
    if (!a) skipped.push({ ...base, rule: 'gone', reason: 'gone', detail: 'no longer in the account' });
    else if (a.action === 'keep') skipped.push({ ...base, rule: a.rule, reason: a.reason, detail: a.detail });
    // A saved deprecation can only become a removal through a limit, which planLimits never sets: defensive.
    else skipped.push({ ...base, rule: a.rule, reason: a.action, detail: a.detail });
  }
  return skipped;
}

function hash(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}
