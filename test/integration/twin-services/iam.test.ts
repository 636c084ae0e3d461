import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateImageCommand, EC2Client, DescribeImagesCommand, RegisterImageCommand } from '@aws-sdk/client-ec2';
import {
  CreateGrantCommand,
  DescribeKeyCommand,
  KMSClient,
  ListGrantsCommand,
  RevokeGrantCommand,
} from '@aws-sdk/client-kms';
import { DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { CreateTopicCommand, PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parsePolicy, type Policy } from '../../../lib/domain/policy.ts';
import { runReadiness } from '../../../lib/workflows/readiness.ts';
import { runRetention } from '../../../lib/workflows/retention.ts';
import { runDrills } from '../../../lib/workflows/drill.ts';
import { startLocalRuntime, type LocalRuntime } from '../../../local/runtime/runtime.ts';
import { seedAccount } from '../../../local/runtime/seed-account.ts';
import { s3Client } from '../../../lib/aws/clients.ts';
import { ManualClock } from '../../../local/twin/clock.ts';
import { seedBundle } from '../../../local/twin/s3.ts';
import { summaries } from '../replication/helpers.ts';
import { evaluate, type AuthRequest, type PolicyStatement } from '../../../local/twin/iam.ts';

/**
 * Every function's real calls, made on the twin under the role serverless.yml gives it (resolved for this policy):
 * replication of an EBS, an encrypted and an instance-store source, a failed copy's cleanup, readiness with
 * reconciliation (a consumer account's lost key grant given again, a stale one retired), retention with
 * DescribeImageReferences, restore drills of the copies. None may be refused; and each statement of each role
 * must be needed by some call (the role minus that statement refuses one), so the roles stay least-privilege.
 */

const ROOT = join(import.meta.dirname, '..', '..', '..');
const ACCOUNT = '000000000000';
const SOURCE = 'us-east-1';
const TOPIC = `arn:aws:sns:${SOURCE}:${ACCOUNT}:ami-dr-notifications`;
const START = Date.UTC(2026, 0, 1);
const CONSUMER = '123456789012';

/** Statements no call on the twin can need: the runtime's own writes (logs), Lambda's failure destination (sqs). */
const OUTSIDE_THE_TWIN = /^(logs|sqs):/;
/** Statements granted for calls this scenario does not make, with why. */
const NOT_EXERCISED: Record<string, RegExp> = {
  // startOrJoinReplication can look an execution up; the event handler never re-drives.
  onImageEvent: /^states:DescribeExecution$/,
};
/**
 * A DR account's statements: this scenario's policy has no DR account, so nothing here calls them. The same roles
 * run the DR-account flow, refused nothing, in test/integration/dr-account (and the retention release there runs
 * under the DR account's own role): reaching the DR role, sharing the source and taking the share back, sealing.
 */
function forDrAccounts(fn: string, statement: PolicyStatement): boolean {
  const actions = [statement.Action ?? []].flat();
  const only = (...allowed: string[]) => actions.every((a) => allowed.includes(a));
  if (only('sts:AssumeRole')) return true;
  if (fn === 'startCopy')
    return (
      only(
        'ec2:ModifyImageAttribute',
        'ec2:ModifySnapshotAttribute',
        'ec2:DescribeSnapshots',
        'kms:DescribeKey',
        'kms:ListGrants',
      ) ||
      (only('kms:CreateGrant') && Boolean(statement.Condition?.ArnLike?.['kms:GranteePrincipal']))
    );
  if (fn === 'summarize')
    return only(
      'ec2:DescribeImages',
      'ec2:DescribeSnapshots',
      'ec2:ModifyImageAttribute',
      'ec2:ModifySnapshotAttribute',
      'kms:DescribeKey',
      'kms:ListGrants',
      'kms:RevokeGrant',
    );
  if (fn === 'finalizeCopy') return only('ec2:DeleteTags');
  if (fn === 'retention') return only('ec2:DisableImageDeregistrationProtection');
  return false;
}

/** Assuming the member role serves member accounts only: test/integration/organization runs on it (and is refused without it). */
const MEMBERS_ONLY = /^sts:AssumeRole$/;

function examplePolicy(): Readonly<Policy> {
  const document = parseYaml(readFileSync(join(ROOT, 'ami-dr.config.yml'), 'utf8')) as Record<string, unknown>;
  const replication = document.replication as Record<string, unknown>;
  // Copies shared with a consumer account, which finalize and readiness let use the DR keys by grant.
  return parsePolicy({
    ...document,
    replication: { ...replication, keyAccess: 'grant', addLaunchPermissions: { userIds: [CONSUMER] } },
    notifications: { snsTopicArn: TOPIC },
  });
}

const builderEc2 = (rt: LocalRuntime, region: string) =>
  new EC2Client({ region, endpoint: rt.twin.endpoint, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });

describe('IAM on the twin: each function runs under its serverless.yml role', () => {
  let rt: LocalRuntime;
  let policy: Readonly<Policy>;
  const replicated: Record<string, string> = {};

  beforeAll(async () => {
    policy = examplePolicy();
    rt = await startLocalRuntime({ policy, clock: new ManualClock(START), twinOptions: { s3: true } });
    seedAccount(rt.twin.seed, policy, rt.twin.clock.now());
    // An aged instance-store family: retention removes the oldest with its S3 bundle.
    for (const [i, age] of [400, 390, 380, 370].entries()) {
      const bundle = await seedBundle(
        s3Client(rt.clients, SOURCE),
        policy.retention.bundleBuckets?.[0] ?? 'ami-bundles',
        `legacy/v${i}`,
        2,
      );
      rt.twin.seed.image(SOURCE, {
        name: `legacy-1.${i}.0`,
        rootDeviceType: 'instance-store',
        imageLocation: bundle.imageLocation,
        creationDate: new Date(START - age * 86_400_000).toISOString(),
      });
    }
    await new SNSClient({
      region: SOURCE,
      endpoint: rt.twin.endpoint,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    }).send(new CreateTopicCommand({ Name: 'ami-dr-notifications' }));
    const ec2 = builderEc2(rt, SOURCE);
    const build = async (name: string, base: string) => {
      const instanceId = rt.twin.seed.instance(SOURCE, { imageId: base });
      const out = await ec2.send(new CreateImageCommand({ InstanceId: instanceId, Name: name }));
      return out.ImageId!;
    };
    replicated.ebs = await build('web-9.0.0', rt.twin.seed.image(SOURCE, { name: 'web-base' }));
    rt.twin.seed.key(SOURCE, { alias: 'producer' });
    replicated.encrypted = await build(
      'secure-1.0.0',
      rt.twin.seed.image(SOURCE, { name: 'secure-base', encrypted: true, kmsKeyId: 'alias/producer' }),
    );
    const source = await seedBundle(s3Client(rt.clients, SOURCE), 'bundles', 'legacy', 2);
    const registered = await ec2.send(
      new RegisterImageCommand({ Name: 'legacy-s3', ImageLocation: source.imageLocation }),
    );
    replicated.instanceStore = registered.ImageId!;
    await rt.waitForIdle();
    // A copy that fails: the branch cleans it up under the cleanup role. Room for one copy per region: the second
    // image's copies wait in the copy-slot queue, handed their slot by finalize (us-west-2) and cleanup (eu-west-1).
    rt.twin.faults.failCopies('eu-west-1');
    rt.twin.faults.copyQuota(1);
    replicated.failing = await build('web-9.0.1', rt.twin.seed.image(SOURCE, { name: 'web-base-2' }));
    replicated.queued = await build('web-9.0.2', rt.twin.seed.image(SOURCE, { name: 'web-base-3' }));
    await rt.waitForIdle();
    rt.twin.faults.clear();
    // The consumer's grants lost in every DR region (readiness grants them again, finalize made them), and a grant
    // for an account nothing is shared with any more (readiness retires it).
    const kms = (region: string) =>
      new KMSClient({
        region,
        endpoint: rt.twin.endpoint,
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      });
    const made: string[] = [];
    for (const region of policy.regions.dr.map((d) => d.region)) {
      const keyArn = (await kms(region).send(new DescribeKeyCommand({ KeyId: 'alias/ami-dr' }))).KeyMetadata!.Arn!;
      for (const g of (await kms(region).send(new ListGrantsCommand({ KeyId: keyArn }))).Grants ?? [])
        if (g.Name === `ami-dr-${CONSUMER}`) {
          made.push(region);
          await kms(region).send(new RevokeGrantCommand({ KeyId: keyArn, GrantId: g.GrantId }));
        }
      if (region === policy.regions.dr[0]!.region)
        await kms(region).send(
          new CreateGrantCommand({
            KeyId: keyArn,
            GranteePrincipal: 'arn:aws:iam::444455556666:root',
            Operations: ['Decrypt', 'DescribeKey', 'CreateGrant'],
            Name: 'ami-dr-444455556666',
          }),
        );
    }
    expect(made).toEqual(policy.regions.dr.map((d) => d.region));
  }, 120_000);

  afterAll(async () => {
    await rt?.stop();
  });

  const outcomes = () => Object.fromEntries(summaries(rt).map((summary) => [summary.source.imageId, summary.outcome]));

  it('replicates EBS, encrypted and instance-store sources with no access error, cleans up a failed copy, queues for the copy quota', () => {
    expect(outcomes()).toEqual({
      [replicated.ebs!]: 'replicated',
      [replicated.encrypted!]: 'replicated',
      [replicated.instanceStore!]: 'replicated',
      [replicated.failing!]: 'partial',
      [replicated.queued!]: 'partial',
    });
    const queued = rt.executions().find((e) => e.input.includes(replicated.queued!));
    expect(queued?.transitions.filter((t) => t.state === 'WaitForSlot')).toHaveLength(2);
    expect(rt.dlq).toEqual([]);
  });

  it("writes the instance-store copy's bundle (manifest and parts) to the amis-for-<account>-in-<region> bucket", async () => {
    for (const region of policy.regions.dr.map((d) => d.region)) {
      const out = await rt.clients.get(EC2Client, region).send(
        new DescribeImagesCommand({
          Owners: ['self'],
          Filters: [{ Name: 'tag:ami-dr:source-image-id', Values: [replicated.instanceStore!] }],
        }),
      );
      const [copy] = out.Images ?? [];
      const [bucket = '', ...key] = (copy?.ImageLocation ?? '').split('/');
      expect(bucket).toMatch(new RegExp(`^amis-for-${rt.twin.accountId}-in-${region}-[0-9a-f]+$`));
      const listed = await s3Client(rt.clients, region).send(new ListObjectsV2Command({ Bucket: bucket }));
      const keys = (listed.Contents ?? []).map((o) => o.Key).sort();
      const prefix = key.slice(0, -1).join('/');
      expect(keys).toEqual([`${prefix}/image.manifest.xml`, `${prefix}/image.part.00`, `${prefix}/image.part.01`]);
    }
  });

  it('runs readiness with reconciliation and retention with reference checks, refused nothing', async () => {
    const readiness = await runReadiness({
      clients: rt.clientsFor('readiness'),
      policy,
      now: rt.twin.clock.now(),
      reconcile: true,
      stateMachineArnFor: (r) => rt.stateMachineArn(r),
    });
    expect(readiness.reconciliation?.errors).toEqual([]);
    expect(readiness.reconciliation?.redriven.length).toBeGreaterThan(0);
    expect(readiness.reconciliation?.repaired.length).toBeGreaterThan(0);
    expect(readiness.reconciliation?.repaired.flatMap((r) => r.applied)).toContain('key-access');
    expect(readiness.reconciliation?.retiredGrants?.map((g) => g.account)).toEqual(['444455556666']);
    await rt.waitForIdle();
    let removed = 0;
    for (const region of [SOURCE, ...policy.regions.dr.map((d) => d.region)]) {
      const run = await runRetention({
        clients: rt.clientsFor('retention'),
        policy,
        region,
        now: rt.twin.clock.now(),
        dryRun: false,
        accountId: ACCOUNT,
        clock: () => rt.twin.clock.now(),
      });
      removed += run.report.removed.length;
    }
    expect(removed).toBeGreaterThan(0);
    // And as the schedule runs them: the starter, then each state machine's tasks under their functions' roles.
    const runs = [await rt.startScheduled('readiness'), await rt.startScheduled('retention')];
    await rt.waitForIdle();
    expect(runs.map((r) => rt.stepFunctions.execution(r.executionArn)?.status)).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    const refused = rt.twin.iam.log.filter((d) => d.decision !== 'Allow');
    expect(refused.map((d) => `${d.accessKeyId}: ${d.request.action} on ${d.request.resource}`)).toEqual([]);
    const checked = new Set(rt.twin.iam.log.map((d) => d.request.action));
    for (const action of [
      'ec2:CopyImage',
      'ec2:CreateTags',
      'ec2:DescribeImageReferences',
      'ssm:GetParameters',
      's3:PutObjectAcl',
      's3:GetObject',
      's3:DeleteObject',
      'kms:CreateGrant',
      'kms:ReEncryptTo',
      'kms:ListGrants',
      'kms:GetKeyPolicy',
      'kms:RetireGrant',
      'ec2:DeleteSnapshot',
      'states:StartExecution',
      'sns:Publish',
      'autoscaling:DescribeAutoScalingGroups',
    ])
      expect(checked).toContain(action);
  });

  it('runs restore drills under the drill role: launches, checks and terminates copies, refused nothing', async () => {
    const clock = rt.twin.clock as ManualClock;
    const run = await runDrills({
      clients: rt.clientsFor('drill'),
      policy,
      now: () => clock.now(),
      sleep: async (ms) => void clock.advance(ms),
    });
    expect(run.report.summary.drills).toBeGreaterThanOrEqual(policy.regions.dr.length);
    expect(run.report.results.filter((r) => r.outcome !== 'passed')).toEqual([]);
    const drill = rt.twin.iam.log.filter((d) => d.request.action.match(/RunInstances|TerminateInstances/));
    expect(drill.filter((d) => d.decision !== 'Allow').map((d) => d.request)).toEqual([]);
    for (const action of ['ec2:RunInstances', 'ec2:TerminateInstances', 'ec2:DescribeInstanceStatus', 'kms:Decrypt'])
      expect(rt.twin.iam.log.map((d) => d.request.action)).toContain(action);
  });

  it('needs every statement of every role: without any one of them, some call of the run is refused', () => {
    const byKey = new Map<string, AuthRequest[]>();
    for (const d of rt.twin.iam.log) byKey.set(d.accessKeyId, [...(byKey.get(d.accessKeyId) ?? []), d.request]);
    const unneeded: string[] = [];
    for (const role of rt.twin.iam.roles()) {
      const requests = byKey.get(role.accessKeyId) ?? [];
      if (requests.length === 0) continue; // a role deployed in a region where nothing ran
      const fn = role.arn.split('/').pop()!;
      role.statements.forEach((statement, i) => {
        const actions = [statement.Action ?? []].flat();
        if (actions.every((a) => OUTSIDE_THE_TWIN.test(a) || NOT_EXERCISED[fn]?.test(a) || MEMBERS_ONLY.test(a)))
          return;
        if (forDrAccounts(fn, statement)) return;
        const without: PolicyStatement[] = role.statements.filter((_, j) => j !== i);
        if (requests.every((r) => evaluate(without, r) === 'Allow'))
          unneeded.push(`${fn}: ${actions.join(', ')} on ${JSON.stringify(statement.Resource)}`);
      });
    }
    expect(unneeded).toEqual([]);
  });
});

describe('IAM on the twin: a refused call fails as each service fails it', () => {
  let rt: LocalRuntime;
  const credentials = { accessKeyId: 'AMIDRNOTHING', secretAccessKey: 'x' };

  beforeAll(async () => {
    rt = await startLocalRuntime({
      policy: examplePolicy(),
      clock: new ManualClock(START),
      twinOptions: { s3: false },
    });
    rt.twin.iam.attach({
      accessKeyId: credentials.accessKeyId,
      arn: `arn:aws:sts::${ACCOUNT}:assumed-role/nothing/session`,
      statements: [{ Effect: 'Allow', Action: 'ec2:DescribeImages', Resource: '*' }],
    });
  });

  afterAll(async () => {
    await rt?.stop();
  });

  it('EC2 answers UnauthorizedOperation (HTTP 403), KMS, Step Functions and DynamoDB AccessDeniedException, SNS AuthorizationError', async () => {
    const config = { region: SOURCE, endpoint: rt.twin.endpoint, credentials, maxAttempts: 1 };
    const ec2 = new EC2Client(config);
    await expect(ec2.send(new DescribeImagesCommand({ Owners: ['self'] }))).resolves.toBeDefined();
    const refused = await ec2
      .send(new CreateImageCommand({ InstanceId: 'i-0123456789abcdef0', Name: 'x' }))
      .catch((e: unknown) => e as { name: string; message: string; $metadata: { httpStatusCode?: number } });
    expect(refused).toMatchObject({ name: 'UnauthorizedOperation', $metadata: { httpStatusCode: 403 } });
    expect((refused as Error).message).toMatch(
      /^You are not authorized to perform this operation\. User: .*ec2:CreateImage/,
    );
    await expect(new KMSClient(config).send(new DescribeKeyCommand({ KeyId: 'alias/aws/ebs' }))).rejects.toMatchObject({
      name: 'AccessDeniedException',
    });
    await expect(
      new SFNClient(config).send(new StartExecutionCommand({ stateMachineArn: rt.stateMachineArn(SOURCE) })),
    ).rejects.toMatchObject({ name: 'AccessDeniedException' });
    await expect(
      new DynamoDBClient(config).send(
        new PutItemCommand({ TableName: 'ami-dr-local-copy-waits', Item: { copy: { S: 'ami-0123456789abcdef0' } } }),
      ),
    ).rejects.toMatchObject({ name: 'AccessDeniedException', message: expect.stringContaining('dynamodb:PutItem') });
    await expect(
      new SNSClient(config).send(new PublishCommand({ TopicArn: TOPIC, Message: 'x' })),
    ).rejects.toMatchObject({ name: 'AuthorizationErrorException' }); // SNS's AuthorizationError code
  });
});
