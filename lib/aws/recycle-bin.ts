import { GetRuleCommand, paginateListRules, type RbinClient, type ResourceTag } from '@aws-sdk/client-rbin';
import type { BinResourceType, BinTag, RecycleBinRule } from '../domain/recycle-bin.ts';
import { awsErrorName, isDeadlineError } from '../domain/errors.ts';

/**
 * The region's Recycle Bin retention rules for AMIs and EBS snapshots. ListRules' summaries carry the retention
 * period but not the rule's resource tags, so each rule is read with GetRule (rules are few: one call each).
 */

export const REQUIRED_PERMISSIONS = ['rbin:ListRules', 'rbin:GetRule'] as const;

const TYPES: readonly BinResourceType[] = ['EC2_IMAGE', 'EBS_SNAPSHOT'];

export interface BinRules {
  rules: RecycleBinRule[];
  /** The rules could not be read: what was freed is reported as if none applied. */
  warning?: string;
}

export async function listRecycleBinRules(rbin: RbinClient, region: string): Promise<BinRules> {
  const rules: RecycleBinRule[] = [];
  try {
    for (const resourceType of TYPES) {
      for await (const page of paginateListRules({ client: rbin }, { ResourceType: resourceType })) {
        for (const summary of page.Rules ?? []) {
          if (!summary.Identifier) continue;
          const rule = await rbin.send(new GetRuleCommand({ Identifier: summary.Identifier }));
          if (rule.Status !== undefined && rule.Status !== 'available') continue; // pending: not retaining yet
          const period = rule.RetentionPeriod ?? summary.RetentionPeriod;
          // Exclusion tags are newer than some SDK versions' models: read them if the response carries them.
          const exclude = (rule as { ExcludeResourceTags?: ResourceTag[] }).ExcludeResourceTags;
          rules.push({
            id: summary.Identifier,
            resourceType,
            retentionDays: period?.RetentionPeriodValue ?? 0,
            resourceTags: binTags(rule.ResourceTags),
            excludeTags: binTags(exclude),
            ...(summary.Description ? { description: summary.Description } : {}),
            ...((rule.LockState ?? summary.LockState) ? { lockState: rule.LockState ?? summary.LockState } : {}),
          });
        }
      }
    }
  } catch (error) {
    if (isDeadlineError(error)) throw error;
    return {
      rules: [],
      warning: `Recycle Bin rules of ${region} could not be read (${awsErrorName(error) ?? 'Error'}: ${(error as Error).message}): GiB freed assumes no rule retains what was deleted`,
    };
  }
  return { rules };
}

function binTags(tags: readonly ResourceTag[] | undefined): BinTag[] {
  return (tags ?? []).flatMap((t) =>
    t.ResourceTagKey ? [{ key: t.ResourceTagKey, ...(t.ResourceTagValue ? { value: t.ResourceTagValue } : {}) }] : [],
  );
}
