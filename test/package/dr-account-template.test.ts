import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAwsServiceSpec } from '@aws-cdk/aws-service-spec';
import { parse as parseYaml } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluate } from '../../local/twin/iam.ts';
import { readDrAccountTemplate } from '../../local/runtime/dr-account.ts';
import { ROOT } from './packaged.ts';
import { specChecker, type CfnTemplate } from './cfn-spec.ts';

/**
 * deploy/dr-account.yml, the template a DR account deploys, checked against the CloudFormation resource
 * specification (what `cloudformation deploy` would reject, found offline), and its roles held to what the DR
 * account needs of them: the production account's role copies but cannot remove or unprotect.
 */

const FILE = join(ROOT, 'deploy', 'dr-account.yml');
let spec: ReturnType<typeof specChecker>;
const template = parseYaml(readFileSync(FILE, 'utf8')) as CfnTemplate;

beforeAll(async () => {
  spec = specChecker(await loadAwsServiceSpec());
}, 600_000);

describe('deploy/dr-account.yml', () => {
  it('uses only resource types CloudFormation knows, with known, well-shaped and required properties', () => {
    expect(Object.keys(template.Resources).length).toBeGreaterThan(0);
    expect(spec.unknownTypes(template)).toEqual([]);
    expect(spec.propertyProblems(template)).toEqual([]);
  });

  it('refers only to resources, parameters, conditions and attributes that exist', () => {
    expect(spec.referenceProblems(template)).toEqual([]);
  });

  it('gives the replicator role copying and finishing unsealed copies, never removing or unprotecting sealed ones', () => {
    const { roles } = readDrAccountTemplate({ accountId: '222222222222', productionAccountId: '111111111111' });
    const replicator = roles.find((r) => r.roleName === 'ami-dr-replicator')!;
    const on = (action: string, tags: Record<string, string>, extra: Record<string, string | string[]> = {}) =>
      evaluate(replicator.statements, {
        action,
        resource: 'arn:aws:ec2:us-west-2::image/ami-0123456789abcdef0',
        context: { ...Object.fromEntries(Object.entries(tags).map(([k, v]) => [`aws:ResourceTag/${k}`, v])), ...extra },
      });
    const sealed = { 'ami-dr:role': 'replica' };
    const unsealed = { ...sealed, 'ami-dr:unsealed': 'true' };
    expect(on('ec2:CopyImage', {})).toBe('Allow');
    expect(on('ec2:CreateTags', {}, { 'ec2:CreateAction': 'CopyImage' })).toBe('Allow');
    for (const action of ['ec2:ModifyImageAttribute', 'ec2:EnableImageDeregistrationProtection', 'ec2:DeregisterImage'])
      expect(on(action, unsealed), action).toBe('Allow');
    for (const action of [
      'ec2:DeregisterImage',
      'ec2:DeleteSnapshot',
      'ec2:ModifyImageAttribute',
      'ec2:DisableImageDeregistrationProtection',
      'ec2:CreateTags',
    ])
      expect(on(action, sealed), action).not.toBe('Allow');
    // Sealing removes only the unsealed mark.
    expect(on('ec2:DeleteTags', unsealed, { 'aws:TagKeys': ['ami-dr:unsealed'] })).toBe('Allow');
    expect(on('ec2:DeleteTags', unsealed, { 'aws:TagKeys': ['ami-dr:role'] })).not.toBe('Allow');
  });

  it('gives the drill role launches of copies as tagged drill instances, and on a copy only the drill record', () => {
    const { roles } = readDrAccountTemplate({ accountId: '222222222222', productionAccountId: '111111111111' });
    const drill = roles.find((r) => r.roleName === 'ami-dr-drill')!;
    const image = 'arn:aws:ec2:us-west-2::image/ami-0123456789abcdef0';
    const instance = 'arn:aws:ec2:us-west-2:222222222222:instance/i-0123456789abcdef0';
    const key = 'arn:aws:kms:us-west-2:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    const on = (action: string, resource: string, context: Record<string, string | string[]> = {}) =>
      evaluate(drill.statements, { action, resource, context });
    const copy = { 'aws:ResourceTag/ami-dr:role': 'replica' };
    expect(on('ec2:RunInstances', image, copy)).toBe('Allow');
    expect(on('ec2:RunInstances', image)).not.toBe('Allow');
    expect(on('ec2:RunInstances', instance, { 'aws:RequestTag/ami-dr:drill': 'ami-0123456789abcdef0' })).toBe('Allow');
    expect(on('ec2:RunInstances', instance)).not.toBe('Allow');
    expect(on('ec2:TerminateInstances', instance, { 'aws:ResourceTag/ami-dr:drill': 'ami-0123' })).toBe('Allow');
    expect(on('ec2:TerminateInstances', instance)).not.toBe('Allow');
    // The drill record, and nothing else: never the unsealed mark that would reopen a copy to the replicator.
    const record = ['ami-dr:drilled-at', 'ami-dr:drill-outcome'];
    expect(on('ec2:CreateTags', image, { ...copy, 'aws:TagKeys': record })).toBe('Allow');
    expect(on('ec2:CreateTags', image, { ...copy, 'aws:TagKeys': ['ami-dr:unsealed'] })).toBe('ExplicitDeny');
    expect(on('ec2:CreateTags', image, { ...copy, 'aws:TagKeys': [...record, 'ami-dr:unsealed'] })).toBe(
      'ExplicitDeny',
    );
    expect(on('ec2:CreateTags', image, { 'aws:TagKeys': record })).not.toBe('Allow');
    for (const action of ['ec2:DeregisterImage', 'ec2:DeleteTags', 'ec2:DisableImageDeregistrationProtection'])
      expect(on(action, image, copy), action).toBe('ExplicitDeny');
    // The account's keys, through EC2 only.
    expect(on('kms:Decrypt', key, { 'kms:ViaService': 'ec2.us-west-2.amazonaws.com' })).toBe('Allow');
    expect(on('kms:Decrypt', key)).not.toBe('Allow');
    expect(
      on('kms:Decrypt', key.replace('222222222222', '111111111111'), {
        'kms:ViaService': 'ec2.us-west-2.amazonaws.com',
      }),
    ).not.toBe('Allow');
  });

  it('keeps deregistered copies and deleted snapshots in a locked, region-level Recycle Bin rule', () => {
    const rules = Object.values(template.Resources).filter((r) => r.Type === 'AWS::Rbin::Rule');
    expect(rules.map((r) => r.Properties?.ResourceType).sort()).toEqual(['EBS_SNAPSHOT', 'EC2_IMAGE']);
    for (const rule of rules) {
      // Only region-level rules (no ResourceTags) can be locked.
      expect(rule.Properties?.ResourceTags).toBeUndefined();
      expect(rule.Properties?.LockConfiguration).toMatchObject({ UnlockDelayUnit: 'DAYS' });
    }
  });

  it("trusts only the production account's ami-dr roles with the replicator, its drill role with drills, and only the DR account with retention", () => {
    const { roles } = readDrAccountTemplate({ accountId: '222222222222', productionAccountId: '111111111111' });
    const trust = (roleName: string, principalArn: string) =>
      evaluate(
        roles.find((r) => r.roleName === roleName)!.trust.map((s) => ({ Resource: '*', ...s })),
        { action: 'sts:AssumeRole', resource: '*', context: { 'aws:PrincipalArn': principalArn } },
      );
    expect(trust('ami-dr-replicator', 'arn:aws:iam::111111111111:role/ami-dr-prod-us-east-1-startCopy')).toBe('Allow');
    expect(trust('ami-dr-replicator', 'arn:aws:iam::111111111111:role/admin')).not.toBe('Allow');
    // The drill role: the production account's drill function role only.
    expect(trust('ami-dr-drill', 'arn:aws:iam::111111111111:role/ami-dr-prod-us-east-1-drill')).toBe('Allow');
    expect(trust('ami-dr-drill', 'arn:aws:iam::111111111111:role/ami-dr-prod-us-east-1-startCopy')).not.toBe('Allow');
    expect(trust('ami-dr-drill', 'arn:aws:iam::333333333333:role/ami-dr-prod-us-east-1-drill')).not.toBe('Allow');
    const retention = roles.find((r) => r.roleName === 'ami-dr-dr-retention')!;
    expect(JSON.stringify(retention.trust)).not.toContain('111111111111');
  });
});
