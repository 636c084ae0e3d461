import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAwsServiceSpec } from '@aws-cdk/aws-service-spec';
import { parse as parseYaml } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluate } from '../../local/twin/iam.ts';
import { readDrAccountTemplate } from '../../local/runtime/dr-account.ts';
import { templateBusPolicies } from '../../local/runtime/roles.ts';
import { matchesPattern, readRules } from '../../local/runtime/runtime.ts';
import { parsePolicy } from '../../lib/domain/policy.ts';
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

  it("forwards exactly its copies' state changes onCopyState acts on to the production bus, through a role that may do only that", () => {
    const stack = { accountId: '222222222222', productionAccountId: '111111111111', region: 'us-west-2' };
    const { roles, forwardingRules } = readDrAccountTemplate(stack);
    expect(forwardingRules).toHaveLength(1);
    const [rule] = forwardingRules;
    const bus = 'arn:aws:events:us-west-2:111111111111:event-bus/default';
    expect(rule!.targets).toEqual([{ busArn: bus, roleArn: 'arn:aws:iam::222222222222:role/ami-dr-copy-events' }]);
    const copyRules = readRules(join(ROOT, 'serverless.yml'), 'onCopyState').rules;
    const change = (State: string, account = '222222222222') => ({
      source: 'aws.ec2',
      'detail-type': 'EC2 AMI State Change',
      account,
      region: 'us-west-2',
      detail: { ImageId: 'ami-0123456789abcdef0', State },
    });
    for (const state of ['available', 'failed']) {
      expect(matchesPattern(rule!.pattern, change(state)), state).toBe(true);
      expect(
        copyRules.some((r) => matchesPattern(r.pattern, change(state))),
        state,
      ).toBe(true);
    }
    // Deregistrations stay in the DR account, and so does what another account forwarded to its bus.
    expect(matchesPattern(rule!.pattern, change('deregistered'))).toBe(false);
    expect(matchesPattern(rule!.pattern, change('available', '333333333333'))).toBe(false);
    const forwarder = roles.find((r) => r.roleName === 'ami-dr-copy-events')!;
    expect(JSON.stringify(forwarder.trust)).toContain('events.amazonaws.com');
    expect(evaluate(forwarder.statements, { action: 'events:PutEvents', resource: bus })).toBe('Allow');
    expect(
      evaluate(forwarder.statements, {
        action: 'events:PutEvents',
        resource: 'arn:aws:events:us-west-2:999999999999:event-bus/default',
      }),
    ).not.toBe('Allow');
    expect(evaluate(forwarder.statements, { action: 'events:PutRule', resource: bus })).not.toBe('Allow');
  });
});

describe("the production account's bus policy for DR accounts (serverless.yml)", () => {
  const policy = parsePolicy({
    regions: {
      sources: ['us-east-1'],
      dr: [
        { region: 'us-west-2', kmsKeyId: 'alias/ami-dr-vault', account: '222222222222' },
        { region: 'eu-west-1', kmsKeyId: 'alias/ami-dr' },
      ],
    },
  });
  const statements = (region: string) =>
    templateBusPolicies({ policy, stage: 'prod', region, accountId: '111111111111' });

  it("lets only the region's DR account put only EC2 AMI State Change events, and only where it owns copies", () => {
    const [statement, ...others] = statements('us-west-2');
    expect(others).toEqual([]);
    expect(statement).toMatchObject({
      Sid: 'ami-dr-prod-dr-account-copy-events',
      Effect: 'Allow',
      Principal: { AWS: ['arn:aws:iam::222222222222:root'] },
      Action: 'events:PutEvents',
      Resource: 'arn:aws:events:us-west-2:111111111111:event-bus/default',
    });
    const put = (source: string, detailType: string) =>
      evaluate([statement!], {
        action: 'events:PutEvents',
        resource: 'arn:aws:events:us-west-2:111111111111:event-bus/default',
        context: { 'events:source': [source], 'events:detail-type': detailType },
      });
    expect(put('aws.ec2', 'EC2 AMI State Change')).toBe('Allow');
    expect(put('aws.ec2', 'AWS API Call via CloudTrail')).not.toBe('Allow');
    expect(put('custom.app', 'EC2 AMI State Change')).not.toBe('Allow');
    expect(statements('eu-west-1')).toEqual([]);
    expect(statements('us-east-1')).toEqual([]);
  });
});
