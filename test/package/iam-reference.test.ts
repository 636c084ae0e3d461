import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parsePolicy, type Policy } from '../../lib/domain/policy.ts';
import { readDrAccountTemplate } from '../../local/runtime/dr-account.ts';
import { templateRoles } from '../../local/runtime/roles.ts';
import { overlaps, referenceProblems } from './iam-reference.ts';
import { ROOT } from './packaged.ts';

const ACCOUNT = '111122223333';

/**
 * The example policy with every option that shapes a role: each kind of key id, a DR account, buckets, a topic, key
 * grants, an organization.
 */
function everyOption(): Readonly<Policy> {
  const document = parseYaml(readFileSync(join(ROOT, 'ami-dr.config.yml'), 'utf8')) as Record<string, unknown>;
  const regions = document.regions as { sources: string[] };
  return parsePolicy({
    ...document,
    regions: {
      ...regions,
      dr: [
        { region: 'us-west-2', kmsKeyId: 'alias/ami-dr' },
        { region: 'eu-west-1', kmsKeyId: `arn:aws:kms:eu-west-1:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab` },
        { region: 'eu-central-1', kmsKeyId: '1234abcd-12ab-34cd-56ef-1234567890ac' },
        { region: 'ap-southeast-2', kmsKeyId: `arn:aws:kms:ap-southeast-2:${ACCOUNT}:alias/ami-dr` },
        { region: 'ap-northeast-1', kmsKeyId: 'alias/ami-dr-vault', account: '444455556666' },
      ],
    },
    replication: { ...(document.replication as object), keyAccess: 'grant' },
    retention: { ...(document.retention as object), reportBucket: 'ami-dr-reports', bundleBuckets: ['ami-bundles'] },
    notifications: { snsTopicArn: `arn:aws:sns:us-east-1:${ACCOUNT}:ami-dr-notices` },
    // Organization reach: the scheduled units assume the member roles, the plan steps list the accounts.
    organization: { ous: ['ou-ab12-cdefgh34'] },
  });
}

describe("serverless.yml's roles against AWS's service authorization reference", () => {
  const roles = templateRoles({ policy: everyOption(), stage: 'dev', region: 'us-east-1', accountId: ACCOUNT });

  it('reads every role, the state machine’s included', () => {
    expect(roles.map((r) => r.logicalId)).toEqual(
      expect.arrayContaining([
        'ReplicateStateMachineRole',
        'RetentionStateMachineRole',
        'ReadinessStateMachineRole',
        'StartScheduledRole',
        'StartCopyRole',
        'AwaitCopyRole',
        'AwaitSlotRole',
        'OnCopyStateRole',
        'DrillRole',
      ]),
    );
    expect(roles).toHaveLength(17);
  });

  it.each(roles.map((r) => [r.logicalId, r] as const))(
    '%s: every action exists, every condition key applies, every resource is one its actions take',
    async (_, role) => {
      const problems: string[] = [];
      for (const [i, statement] of role.statements.entries()) {
        for (const p of await referenceProblems(statement)) problems.push(`statement ${i}: ${p}`);
      }
      expect(problems).toEqual([]);
    },
  );
});

describe("deploy/dr-account.yml's roles against AWS's service authorization reference", () => {
  const { roles } = readDrAccountTemplate({ accountId: '444455556666', productionAccountId: ACCOUNT });

  it('reads every role, the replicator, drill and retention roles included', () => {
    expect(roles.map((r) => r.roleName)).toEqual(
      expect.arrayContaining(['ami-dr-dr-retention', 'ami-dr-drill', 'ami-dr-replicator']),
    );
  });

  it.each(roles.map((r) => [r.roleName, r] as const))(
    '%s: every action exists, every condition key applies, every resource is one its actions take',
    async (_, role) => {
      const problems: string[] = [];
      for (const [i, statement] of role.statements.entries()) {
        for (const p of await referenceProblems(statement)) problems.push(`statement ${statement.Sid ?? i}: ${p}`);
      }
      expect(problems).toEqual([]);
    },
  );
});

describe('the reference check reports what AWS would not recognise', () => {
  it('passes a statement as AWS documents it', async () => {
    expect(
      await referenceProblems({
        Effect: 'Allow',
        Action: ['ec2:Describe*', 'ec2:DeregisterImage'],
        Resource: [`arn:aws:ec2:us-east-1::image/*`, '*'],
        Condition: { StringEquals: { 'aws:ResourceTag/ami-dr:role': 'replica', 'ec2:Region': 'us-east-1' } },
      }),
    ).toEqual([]);
  });

  it('reports an unknown action, an unknown service and a wildcard that names nothing', async () => {
    const problems = await referenceProblems({
      Effect: 'Allow',
      Action: ['ec2:CopyImages', 'ec3:CopyImage', 'ec2:Frobnicate*'],
      Resource: '*',
    });
    expect(problems).toEqual([
      'ec2:CopyImages: no such action',
      'ec3:CopyImage: no service ec3',
      'ec2:Frobnicate*: no such action',
    ]);
  });

  it('reports a condition key that applies to none of the actions, and an unknown global key', async () => {
    const problems = await referenceProblems({
      Effect: 'Allow',
      Action: ['ec2:DescribeImages'],
      Resource: '*',
      Condition: {
        StringEquals: { 'ec2:CreateAction': 'CopyImage', 'kms:ViaService': 'ec2.us-east-1.amazonaws.com' },
        Bool: { 'aws:NoSuchKey': 'true' },
        StringLike: { 'aws:ResourceTag/ami-dr:role': 'replica', 'aws:RequestedRegion': 'us-*' },
      },
    });
    expect(problems).toEqual([
      'ec2:CreateAction: applies to none of ec2:DescribeImages',
      'kms:ViaService: applies to none of ec2:DescribeImages',
      'aws:NoSuchKey: not a global condition key',
      'aws:ResourceTag/ami-dr:role: applies to none of ec2:DescribeImages',
    ]);
  });

  it('reports a resource no action takes: another service’s, a bucket for an object, an ARN for a `*`-only action', async () => {
    expect(
      await referenceProblems({
        Effect: 'Allow',
        Action: ['s3:PutObject'],
        Resource: ['arn:aws:s3:::reports', 'arn:aws:sns:us-east-1:111122223333:topic', 'arn:aws:s3:::reports/*'],
      }),
    ).toEqual([
      'arn:aws:s3:::reports: no resource type of s3:PutObject matches',
      'arn:aws:sns:us-east-1:111122223333:topic: no resource type of s3:PutObject matches',
    ]);
    expect(
      await referenceProblems({
        Effect: 'Allow',
        Action: ['ec2:DescribeImages'],
        Resource: 'arn:aws:ec2:us-east-1::image/*',
      }),
    ).toEqual(['arn:aws:ec2:us-east-1::image/*: no resource type of ec2:DescribeImages matches']);
  });

  it('matches a resource pattern to an ARN format when some ARN fits both', () => {
    const logStream =
      'arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroupName}:log-stream:${LogStreamName}';
    expect(overlaps('arn:aws:logs:us-east-1:111122223333:log-group:/aws/lambda/f:*', logStream)).toBe(true);
    expect(overlaps('arn:aws:logs:us-east-1:111122223333:log-group:/aws/lambda/f', logStream)).toBe(false);
    expect(overlaps('arn:aws:s3:::b?cket/*', 'arn:${Partition}:s3:::${BucketName}/${ObjectName}')).toBe(true);
    expect(overlaps('arn:aws:s3:::bucket', 'arn:${Partition}:s3:::${BucketName}/${ObjectName}')).toBe(false);
  });
});
