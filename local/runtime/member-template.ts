import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, type Tags } from 'yaml';
import { packageRoot } from '../../lib/package-root.ts';

/**
 * deploy/member-account.yml read as CloudFormation reads it (short-form intrinsics such as `!Sub` become their
 * `Fn::` objects), for the local runtime (its forwarding rule's pattern) and the tests.
 */
export const MEMBER_TEMPLATE_FILE = join(packageRoot(), 'deploy', 'member-account.yml');

const scalar = (tag: string, fn: string, split = false) => ({
  tag: `!${tag}`,
  resolve: (value: string) => ({ [fn]: split ? value.split(/\.(.*)/).slice(0, 2) : value }),
});
const sequence = (tag: string, fn: string) => ({
  tag: `!${tag}`,
  collection: 'seq' as const,
  resolve: (value: unknown) => ({ [fn]: (value as { toJSON(): unknown }).toJSON() }),
});

export const CFN_TAGS = [
  scalar('Ref', 'Ref'),
  scalar('Sub', 'Fn::Sub'),
  scalar('GetAtt', 'Fn::GetAtt', true),
  sequence('GetAtt', 'Fn::GetAtt'),
  sequence('If', 'Fn::If'),
  sequence('Equals', 'Fn::Equals'),
  sequence('Not', 'Fn::Not'),
  sequence('Sub', 'Fn::Sub'),
  sequence('Join', 'Fn::Join'),
] as Tags;

export interface CfnTemplate {
  Parameters?: Record<string, Record<string, unknown>>;
  Conditions?: Record<string, unknown>;
  Resources: Record<
    string,
    { Type: string; Condition?: string; DependsOn?: string | string[]; Properties?: Record<string, unknown> }
  >;
  Outputs?: Record<string, unknown>;
}

export function readMemberTemplate(file = MEMBER_TEMPLATE_FILE): CfnTemplate {
  return parseYaml(readFileSync(file, 'utf8'), { customTags: CFN_TAGS }) as CfnTemplate;
}

/** The patterns of the template's rules that forward events to the home account's bus. */
export function forwardingPatterns(template = readMemberTemplate()): Record<string, unknown>[] {
  return Object.values(template.Resources)
    .filter((r) => r.Type === 'AWS::Events::Rule' && r.Properties?.EventPattern)
    .map((r) => r.Properties!.EventPattern as Record<string, unknown>);
}
