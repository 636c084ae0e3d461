import type { METRIC } from '../observability.ts';
import type { ImageRecord } from './image.ts';
import type { DrillSettings, Policy } from './policy.ts';
import { familyName } from './retention-planner.ts';
import { isReplica } from './tags.ts';

/**
 * Restore drills, the pure part: which copies to launch (the newest of each family in each DR region), on which
 * instance type, within the run's budget; how a failure is classified; what is recorded on the copy; which
 * leftover drill instances a run terminates first. The workflow (lib/workflows/drill.ts) does the calls.
 */

export const DRILL_TAG = {
  /** On drill instances (and their volumes), from creation: the only instances the drill role may terminate. */
  drill: 'ami-dr:drill',
  /** On the copy: when it was last drilled, and how it went (`passed`, `failed: key-access`). */
  drilledAt: 'ami-dr:drilled-at',
  outcome: 'ami-dr:drill-outcome',
} as const;

/** A drill instance older than this is a leftover (a run that died): the next run terminates it first. */
export const LEFTOVER_AGE_MS = 60 * 60_000;

export type DrillFailure = 'key-access' | 'launch-permission' | 'capacity' | 'status-check' | 'unsupported-type';

export interface DrillTarget {
  region: string;
  family: string;
  copyImageId: string;
  name: string;
  sourceImageId?: string;
  architecture: string;
  bootMode?: string;
  /** Undefined when no instance type can boot the copy (`unsupported` says why). */
  instanceType?: string;
  unsupported?: string;
  subnetId?: string;
  securityGroupIds?: string[];
}

export interface SkippedDrill {
  region: string;
  family: string;
  copyImageId: string;
  reason: string;
}

export interface DrillPlan {
  targets: DrillTarget[];
  skipped: SkippedDrill[];
  /** Instance-minutes the targets may use at most (each its whole launch timeout). */
  reservedMinutes: number;
}

type TypeChoice = { instanceType: string } | { unsupported: string };

/**
 * The smallest (cheapest) instance type that boots an image of this architecture and boot mode. Nitro x86 types
 * boot both UEFI and legacy BIOS; Graviton boots UEFI only; 32-bit images need a Xen type, which boots legacy BIOS
 * only; Mac images need a dedicated host (user guide: ami-boot, instance-type-boot-mode). A type set in the policy
 * for the architecture wins.
 */
export function instanceTypeFor(
  architecture: string | undefined,
  bootMode: string | undefined,
  overrides: DrillSettings['instanceTypes'] = {},
): TypeChoice {
  const arch = architecture ?? 'x86_64';
  if (arch.endsWith('_mac')) return { unsupported: `${arch} images need a Mac dedicated host` };
  const rule = TYPE_RULES[arch];
  if (!rule) return { unsupported: `no instance type known for architecture ${arch}` };
  if (bootMode && !rule.bootModes.includes(bootMode))
    return { unsupported: `${arch} instance types do not boot ${bootMode} images` };
  const override = overrides[arch as keyof typeof overrides];
  return { instanceType: override ?? rule.smallest };
}

const TYPE_RULES: Record<string, { smallest: string; bootModes: string[] }> = {
  x86_64: { smallest: 't3.nano', bootModes: ['legacy-bios', 'uefi', 'uefi-preferred'] },
  arm64: { smallest: 't4g.nano', bootModes: ['uefi', 'uefi-preferred'] },
  i386: { smallest: 't2.nano', bootModes: ['legacy-bios', 'uefi-preferred'] },
};

/** A copy's family: the replicas scope's family tag, else its name without the version suffix. */
export function drillFamily(copy: ImageRecord, policy: Readonly<Policy>): string {
  const tag = policy.retention.replicas.family.tag;
  return (tag && copy.tags[tag]) || familyName(copy.name);
}

/**
 * The drills of one run: the newest available copy of each family in each DR region, newest first, as many as the
 * budget allows: at most `maxDrills`, and at most `maxInstanceMinutes` with every drill reserving its whole launch
 * timeout (a drill is terminated when its timeout ends, so that bound holds whatever happens). A copy no type can
 * boot costs nothing and is reported as a failed drill without a launch.
 */
export function planDrills(
  copies: readonly ImageRecord[],
  policy: Readonly<Policy>,
  settings: DrillSettings,
): DrillPlan {
  const drRegions = new Set(policy.regions.dr.map((d) => d.region));
  const newest = new Map<string, ImageRecord>();
  for (const copy of copies) {
    if (copy.state !== 'available' || !isReplica(copy.tags) || !drRegions.has(copy.region)) continue;
    const key = `${copy.region}\u0000${drillFamily(copy, policy)}`;
    const seen = newest.get(key);
    if (
      !seen ||
      copy.creationDate > seen.creationDate ||
      (copy.creationDate === seen.creationDate && copy.imageId > seen.imageId)
    )
      newest.set(key, copy);
  }
  const ordered = [...newest.values()].sort(
    (a, b) =>
      b.creationDate.localeCompare(a.creationDate) ||
      a.region.localeCompare(b.region) ||
      a.imageId.localeCompare(b.imageId),
  );
  const plan: DrillPlan = { targets: [], skipped: [], reservedMinutes: 0 };
  let launches = 0;
  for (const copy of ordered) {
    const network = settings.network[copy.region] ?? {};
    const choice = instanceTypeFor(copy.architecture, copy.bootMode, settings.instanceTypes);
    const target: DrillTarget = {
      region: copy.region,
      family: drillFamily(copy, policy),
      copyImageId: copy.imageId,
      name: copy.name,
      ...(copy.sourceImageId ? { sourceImageId: copy.sourceImageId } : {}),
      architecture: copy.architecture ?? 'x86_64',
      ...(copy.bootMode ? { bootMode: copy.bootMode } : {}),
      ...('instanceType' in choice ? { instanceType: choice.instanceType } : { unsupported: choice.unsupported }),
      ...(network.subnetId ? { subnetId: network.subnetId } : {}),
      ...(network.securityGroupIds?.length ? { securityGroupIds: [...network.securityGroupIds] } : {}),
    };
    if (!target.instanceType) {
      plan.targets.push(target);
      continue;
    }
    const skip = (reason: string) =>
      plan.skipped.push({ region: copy.region, family: target.family, copyImageId: copy.imageId, reason });
    if (launches >= settings.maxDrills) skip(`budget: at most ${settings.maxDrills} drills per run`);
    else if (plan.reservedMinutes + settings.launchTimeoutMinutes > settings.maxInstanceMinutes)
      skip(`budget: at most ${settings.maxInstanceMinutes} instance-minutes per run`);
    else {
      launches++;
      plan.reservedMinutes += settings.launchTimeoutMinutes;
      plan.targets.push(target);
    }
  }
  return plan;
}

/** What a failed launch or boot looked like: an API error's code and message, or the instance's state reason. */
export interface FailureSignal {
  code?: string;
  message?: string;
}

interface FailureRule {
  failure: DrillFailure;
  matches(signal: FailureSignal): boolean;
}

const has = (signal: FailureSignal, pattern: RegExp) => pattern.test(`${signal.code ?? ''} ${signal.message ?? ''}`);

/** Evaluated in order; the first that matches classifies the failure. */
const FAILURE_RULES: readonly FailureRule[] = [
  { failure: 'key-access', matches: (s) => has(s, /InvalidKMSKey|KMS|kms:/) },
  {
    failure: 'capacity',
    matches: (s) => has(s, /InsufficientInstanceCapacity|InstanceLimitExceeded|VcpuLimitExceeded|InsufficientCapacity/),
  },
  {
    failure: 'unsupported-type',
    matches: (s) => has(s, /Unsupported|architecture|boot mode|InvalidInstanceType/i),
  },
  {
    failure: 'launch-permission',
    matches: (s) => has(s, /InvalidAMIID|AuthFailure|UnauthorizedOperation|not authorized/),
  },
];

/** The class of a failure signal; `status-check` when nothing more specific explains it (it booted, or not, alone). */
export function classifyFailure(signal: FailureSignal): DrillFailure {
  return FAILURE_RULES.find((r) => r.matches(signal))?.failure ?? 'status-check';
}

/** The tags a finished drill leaves on its copy. */
export function drillTags(
  outcome: 'passed' | 'failed',
  failure: DrillFailure | undefined,
  at: string,
): Record<string, string> {
  return {
    [DRILL_TAG.drilledAt]: at,
    [DRILL_TAG.outcome]: outcome === 'passed' ? 'passed' : `failed: ${failure ?? 'status-check'}`,
  };
}

export interface DrillVerification {
  at: string;
  outcome: string;
  passed: boolean;
  /** Whole days since the drill. */
  days: number;
}

/** What a copy's tags say of its last drill, for readiness ("verified 3 days ago"). */
export function drillVerification(tags: Record<string, string>, now: number): DrillVerification | undefined {
  const at = tags[DRILL_TAG.drilledAt];
  const when = at ? Date.parse(at) : NaN;
  if (!at || Number.isNaN(when)) return undefined;
  const outcome = tags[DRILL_TAG.outcome] ?? 'unknown';
  return { at, outcome, passed: outcome === 'passed', days: Math.max(0, Math.floor((now - when) / 86_400_000)) };
}

/** `verified 3 days ago`, `verified today`, or `drill failed 2 days ago (key-access)`. */
export function describeVerification(v: DrillVerification): string {
  const ago = v.days === 0 ? 'today' : v.days === 1 ? '1 day ago' : `${v.days} days ago`;
  return v.passed ? `verified ${ago}` : `drill ${ago}: ${v.outcome}`;
}

export interface DrillInstance {
  instanceId: string;
  /** ISO 8601. */
  launchTime?: string;
  state?: string;
}

/** Drill instances a run terminates before it starts: not terminated, and launched more than an hour ago. */
export function leftoverInstances(instances: readonly DrillInstance[], now: number): DrillInstance[] {
  return instances.filter((i) => {
    if (i.state === 'terminated' || i.state === 'shutting-down') return false;
    const launched = i.launchTime ? Date.parse(i.launchTime) : NaN;
    return Number.isNaN(launched) || now - launched > LEFTOVER_AGE_MS;
  });
}

/**
 * The drill run's metrics (namespace ami-dr); `DrillsFailed` drives the drill-failures alarm, and counts a DR region
 * whose account could not be reached as a failed drill: none of its copies is proven.
 */
export function drillMetrics(summary: {
  drills: number;
  passed: number;
  failed: number;
  unreached?: number;
  instanceMinutes: number;
}): { name: (typeof METRIC)[keyof typeof METRIC]; unit: 'Count' | 'None'; value: number }[] {
  return [
    { name: 'DrillsRun', unit: 'Count', value: summary.drills },
    { name: 'DrillsPassed', unit: 'Count', value: summary.passed },
    { name: 'DrillsFailed', unit: 'Count', value: summary.failed + (summary.unreached ?? 0) },
    { name: 'DrillInstanceMinutes', unit: 'None', value: summary.instanceMinutes },
  ];
}
