import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAwsServiceSpec } from '@aws-cdk/aws-service-spec';
import type { SpecDatabase } from '@aws-cdk/service-spec-types';
import { beforeAll, describe, expect, it } from 'vitest';
import { forwardingPatterns, readMemberTemplate, type CfnTemplate } from '../../local/runtime/member-template.ts';
import { matchesPattern, readRules } from '../../local/runtime/runtime.ts';
import { specChecker } from './cfn-spec.ts';
import { ROOT } from './packaged.ts';

/**
 * deploy/member-account.yml, the StackSet template for member accounts: valid against the CloudFormation
 * specification, its role assumable only as the policy says (the home account's ami-dr roles, inside the
 * organization, with the ExternalId), and its rule forwarding exactly the events the home rules act on.
 */
let template: CfnTemplate;
let db: SpecDatabase;

beforeAll(async () => {
  template = readMemberTemplate();
  db = await loadAwsServiceSpec();
}, 120_000);

const event = (file: string): unknown => JSON.parse(readFileSync(join(ROOT, 'events', file), 'utf8'));

describe('member account template', () => {
  it('validates against the CloudFormation resource specification', () => {
    expect(Object.keys(template.Resources).length).toBeGreaterThan(0);
    expect(specChecker(db).problems(template)).toEqual([]);
  });

  it('creates the role once (home region only) and lets only the home ami-dr roles of the organization assume it', () => {
    const role = template.Resources.MemberRole!;
    expect(role.Condition).toBe('CreateRole');
    expect(template.Conditions?.CreateRole).toEqual({ 'Fn::Equals': [{ Ref: 'AWS::Region' }, { Ref: 'HomeRegion' }] });
    const [trust] = (role.Properties!.AssumeRolePolicyDocument as { Statement: Record<string, unknown>[] }).Statement;
    expect(trust).toMatchObject({
      Action: 'sts:AssumeRole',
      Principal: { AWS: { 'Fn::Sub': 'arn:${AWS::Partition}:iam::${HomeAccountId}:root' } },
      Condition: {
        StringEquals: {
          'aws:PrincipalOrgID': { Ref: 'OrganizationId' },
          'sts:ExternalId': { 'Fn::If': ['HasExternalId', { Ref: 'ExternalId' }, { Ref: 'AWS::NoValue' }] },
        },
        ArnLike: { 'aws:PrincipalArn': expect.objectContaining({ 'Fn::Sub': expect.stringContaining(':role/') }) },
      },
    });
    expect(role.Properties!.RoleName).toEqual({ Ref: 'MemberRoleName' });
  });

  it('never lets the role remove images marked ami-dr:retain, nor act outside EC2 image work', () => {
    const statements = (role: string) =>
      (
        template.Resources[role]!.Properties!.Policies as {
          PolicyDocument: { Statement: { Action: string | string[]; Condition?: unknown }[] };
        }[]
      ).flatMap((p) => p.PolicyDocument.Statement);
    const all = statements('MemberRole');
    const actions = all.flatMap((s) => [s.Action].flat());
    expect(actions.filter((a) => a.includes('*'))).toEqual([]);
    expect(new Set(actions.map((a) => a.split(':')[0]))).toEqual(
      new Set(['ec2', 'autoscaling', 'rbin', 'kms', 'ssm', 'imagebuilder']),
    );
    for (const s of all.filter((s) => [s.Action].flat().includes('ec2:DeregisterImage')))
      expect(s.Condition, JSON.stringify(s)).toBeDefined();
  });

  it('forwards to the home bus, through its own role, the image events the home onImageEvent rules act on', () => {
    const rule = template.Resources.ForwardImageEventsRule!.Properties!;
    const [target] = rule.Targets as { Arn: unknown; RoleArn: unknown }[];
    expect(target!.Arn).toEqual({
      'Fn::Sub': 'arn:${AWS::Partition}:events:${AWS::Region}:${HomeAccountId}:event-bus/default',
    });
    expect(target!.RoleArn).toEqual({ 'Fn::GetAtt': ['ForwardImageEventsRole', 'Arn'] });
    const forwards = (e: unknown) => forwardingPatterns(template).some((p) => matchesPattern(p, e));
    const { rules } = readRules();
    for (const file of [
      'cloudtrail-create-image.json',
      'cloudtrail-copy-image.json',
      'cloudtrail-register-image.json',
      'ami-state-change-available.json',
    ]) {
      const e = event(file);
      expect(
        rules.some((r) => matchesPattern(r.pattern, e)),
        file,
      ).toBe(true);
      expect(forwards(e), file).toBe(true);
    }
    // Other EC2 API calls stay in the member.
    const other = { ...(event('cloudtrail-create-image.json') as Record<string, unknown>) };
    other.detail = { ...(other.detail as Record<string, unknown>), eventName: 'RunInstances' };
    expect(forwards(other)).toBe(false);
  });
});
