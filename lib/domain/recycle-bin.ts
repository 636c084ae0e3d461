/**
 * Recycle Bin retention rules as retention sees them: a rule of the region retains what ami-dr deregisters
 * (`EC2_IMAGE`, EBS-backed AMIs) or deletes (`EBS_SNAPSHOT`) for its retention period, during which the storage is
 * still billed; it is freed only when the period ends. A rule with resource tags retains only resources with one
 * of those tags (a tag without a value matches the key alone); a rule without (region-level) retains every resource
 * of its type, except those carrying one of its exclusion tags. Where several rules match, the longest period
 * applies.
 */

export type BinResourceType = 'EC2_IMAGE' | 'EBS_SNAPSHOT';

export interface BinTag {
  key: string;
  /** Absent: any value. */
  value?: string;
}

export interface RecycleBinRule {
  id: string;
  resourceType: BinResourceType;
  retentionDays: number;
  /** Tag-level rules: the tags that put a resource under the rule. Empty: a region-level rule. */
  resourceTags: readonly BinTag[];
  /** Region-level rules: tags that keep a resource out of the rule. */
  excludeTags: readonly BinTag[];
  description?: string;
  /** `locked`, `pending_unlock`, `unlocked`, when the API says. */
  lockState?: string;
}

/** Where a deleted resource goes: the rule that retains it and for how long. */
export interface BinStay {
  ruleId: string;
  retentionDays: number;
}

const DAY_MS = 86_400_000;

const hasTag = (tags: Readonly<Record<string, string>>, t: BinTag): boolean =>
  tags[t.key] !== undefined && (t.value === undefined || tags[t.key] === t.value);

/** The rule that retains a resource of this type and these tags, or undefined when it is deleted outright. */
export function binStayFor(
  rules: readonly RecycleBinRule[],
  resourceType: BinResourceType,
  tags: Readonly<Record<string, string>>,
): BinStay | undefined {
  let best: RecycleBinRule | undefined;
  for (const rule of rules) {
    if (rule.resourceType !== resourceType) continue;
    const applies =
      rule.resourceTags.length > 0
        ? rule.resourceTags.some((t) => hasTag(tags, t))
        : !rule.excludeTags.some((t) => hasTag(tags, t));
    if (applies && (!best || rule.retentionDays > best.retentionDays)) best = rule;
  }
  return best ? { ruleId: best.id, retentionDays: best.retentionDays } : undefined;
}

/** When something put in the bin at `atMs` leaves it (and stops being billed). */
export function binUntil(stay: BinStay, atMs: number): string {
  return new Date(atMs + stay.retentionDays * DAY_MS).toISOString();
}

/** One line per rule, for `ami-dr validate` and the report. */
export function describeBinRule(rule: RecycleBinRule): string {
  const what = rule.resourceType === 'EC2_IMAGE' ? 'AMIs' : 'EBS snapshots';
  const tags = (list: readonly BinTag[]): string =>
    list.map((t) => (t.value === undefined ? t.key : `${t.key}=${t.value}`)).join(', ');
  const scope =
    rule.resourceTags.length > 0
      ? `tagged ${tags(rule.resourceTags)}`
      : `all${rule.excludeTags.length > 0 ? ` except tagged ${tags(rule.excludeTags)}` : ''}`;
  return `Recycle Bin rule ${rule.id}: ${what} ${scope} kept ${rule.retentionDays} days after deletion${rule.lockState ? ` (${rule.lockState})` : ''}`;
}
