import type { ImageRecord, LaunchPermission } from './image.ts';
import type { Policy } from './policy.ts';
import { globMatch, TAG } from './tags.ts';

/**
 * What the policy requires of a copy, as readiness checks it. Interim definitions until the replication
 * module exports its own; readiness must hold copies to exactly what replication applies.
 */

export function selectsImage(policy: Policy, image: ImageRecord): boolean {
  const s = policy.selector;
  const tagMatches = (want: string, have: string | undefined) => have !== undefined && (want === '*' || want === have);
  if (!Object.entries(s.includeTags).every(([k, v]) => tagMatches(v, image.tags[k]))) return false;
  if (Object.entries(s.excludeTags).some(([k, v]) => tagMatches(v, image.tags[k]))) return false;
  if (s.namePatterns.length && !s.namePatterns.some((p) => globMatch(p, image.name))) return false;
  if (s.excludeNamePatterns.some((p) => globMatch(p, image.name))) return false;
  return true;
}

export function requiredCopyTags(policy: Policy, source: ImageRecord): Record<string, string> {
  const r = policy.replication;
  const tags: Record<string, string> = {};
  if (r.copyTags) {
    for (const [k, v] of Object.entries(source.tags)) {
      if (k.startsWith('aws:') || k.startsWith('ami-dr:') || r.tagDenyList.some((p) => globMatch(p, k))) continue;
      tags[k] = v;
    }
  }
  Object.assign(tags, r.extraTags);
  tags[TAG.sourceImageId] = source.imageId;
  tags[TAG.sourceRegion] = source.region;
  return tags;
}

export function requiredLaunchPermissions(policy: Policy, sourcePermissions: readonly LaunchPermission[]): LaunchPermission[] {
  const r = policy.replication;
  const out: LaunchPermission[] = r.copyLaunchPermissions ? sourcePermissions.filter((p) => p.group !== 'all') : [];
  out.push(...r.addLaunchPermissions.userIds.map((userId) => ({ userId })));
  out.push(...r.addLaunchPermissions.organizationArns.map((organizationArn) => ({ organizationArn })));
  out.push(...r.addLaunchPermissions.organizationalUnitArns.map((organizationalUnitArn) => ({ organizationalUnitArn })));
  return out;
}
