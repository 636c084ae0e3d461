import { loadAwsServiceSpec } from '@aws-cdk/aws-service-spec';
import type { SpecDatabase } from '@aws-cdk/service-spec-types';
import { specChecker } from './cfn-spec.ts';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensurePackaged, type Template } from './packaged.ts';

/**
 * The packaged template checked against the CloudFormation resource specification: what `cloudformation deploy`
 * would reject (unknown types and properties, missing required ones, dangling references), found offline.
 */

let template: Template;
let db: SpecDatabase;

beforeAll(async () => {
  [template, db] = await Promise.all([ensurePackaged(), loadAwsServiceSpec()]);
  spec = specChecker(db);
}, 600_000);

let spec: ReturnType<typeof specChecker>;

interface MapState {
  Type: string;
  ItemProcessor: { ProcessorConfig: unknown };
  ItemsPath?: string;
  ItemReader?: unknown;
  ResultWriter?: unknown;
  ToleratedFailurePercentage?: number;
  MaxConcurrency?: number;
}

describe('packaged CloudFormation template', () => {
  it('uses only resource types CloudFormation knows', () => {
    expect(spec.unknownTypes(template)).toEqual([]);
  });

  it('gives every resource only known properties, of the right shape, with the required ones present', () => {
    expect(spec.propertyProblems(template)).toEqual([]);
  });

  it('refers only to resources, parameters, conditions and attributes that exist', () => {
    expect(spec.referenceProblems(template)).toEqual([]);
  });

  it('runs every function on nodejs22.x, arm64, with its own role and log group', () => {
    const functions = Object.entries(template.Resources).filter(([, r]) => r.Type === 'AWS::Lambda::Function');
    expect(functions.length).toBeGreaterThan(0);
    const roles = new Set<string>();
    for (const [id, { Properties: p = {} }] of functions) {
      expect(p.Runtime, id).toBe('nodejs22.x');
      expect(p.Architectures, id).toEqual(['arm64']);
      const role = (p.Role as { 'Fn::GetAtt'?: string[] })['Fn::GetAtt']?.[0];
      expect(template.Resources[role ?? '']?.Type, `${id} role`).toBe('AWS::IAM::Role');
      roles.add(role!);
      const logGroup = template.Resources[id.replace(/LambdaFunction$/, 'LogGroup')];
      expect(logGroup?.Properties?.RetentionInDays, `${id} log retention`).toBeGreaterThan(0);
    }
    expect(roles.size, 'one role per function').toBe(functions.length);
  });

  const COPY_STATE_PATTERN = {
    source: ['aws.ec2'],
    'detail-type': ['EC2 AMI State Change'],
    detail: { State: ['available', 'failed'] },
  };

  it('routes image events to onImageEvent (and copies done to onCopyState) with a dead-letter queue and a bounded retry policy', () => {
    const rules = Object.values(template.Resources).filter(
      (r) => r.Type === 'AWS::Events::Rule' && r.Properties?.EventPattern,
    );
    const patterns = rules.map(
      (r) => r.Properties!.EventPattern as { 'detail-type': string[]; detail: Record<string, string[]> },
    );
    expect(patterns).toContainEqual({
      source: ['aws.ec2'],
      'detail-type': ['AWS API Call via CloudTrail'],
      detail: { eventSource: ['ec2.amazonaws.com'], eventName: ['CreateImage', 'CopyImage', 'RegisterImage'] },
    });
    expect(patterns).toContainEqual({
      source: ['aws.ec2'],
      'detail-type': ['EC2 AMI State Change'],
      detail: { State: ['available'] },
    });
    expect(patterns).toContainEqual(COPY_STATE_PATTERN);
    for (const rule of rules) {
      const [target] = rule.Properties!.Targets as {
        Arn: unknown;
        DeadLetterConfig?: { Arn: unknown };
        RetryPolicy?: Record<string, number>;
      }[];
      const copyState = JSON.stringify(rule.Properties!.EventPattern) === JSON.stringify(COPY_STATE_PATTERN);
      expect(target!.Arn).toEqual({
        'Fn::GetAtt': [copyState ? 'OnCopyStateLambdaFunction' : 'OnImageEventLambdaFunction', 'Arn'],
      });
      expect(target!.DeadLetterConfig?.Arn).toEqual({ 'Fn::GetAtt': ['EventsDeadLetterQueue', 'Arn'] });
      expect(target!.RetryPolicy?.MaximumRetryAttempts).toBeGreaterThan(0);
      expect(target!.RetryPolicy?.MaximumEventAgeInSeconds).toBeGreaterThan(0);
    }
  });

  it('schedules retention hourly and readiness every 30 minutes through the starter of each state machine, and drills weekly, off unless the policy opts in', () => {
    const schedules = Object.values(template.Resources)
      .filter((r) => r.Type === 'AWS::Events::Rule' && r.Properties?.ScheduleExpression)
      .map((r) => {
        const [target] = r.Properties!.Targets as {
          Arn: { 'Fn::GetAtt': string[] };
          InputTransformer?: { InputTemplate: string };
        }[];
        const fn = target!.Arn['Fn::GetAtt'][0]!;
        const state = String(r.Properties!.State);
        if (fn !== 'StartScheduledLambdaFunction') return [fn, [r.Properties!.ScheduleExpression, state]];
        const input = JSON.parse(target!.InputTransformer!.InputTemplate.replace('<time>', 'T')) as {
          job: string;
          periodMinutes: number;
        };
        return [input.job, [r.Properties!.ScheduleExpression, input.periodMinutes, state]];
      });
    expect(Object.fromEntries(schedules)).toEqual({
      retention: ['rate(1 hour)', 60, 'ENABLED'],
      readiness: ['rate(30 minutes)', 30, 'ENABLED'],
      DrillLambdaFunction: ['rate(7 days)', 'DISABLED'],
    });
    const variables = (
      template.Resources.StartScheduledLambdaFunction!.Properties!.Environment as { Variables: Record<string, unknown> }
    ).Variables;
    expect(variables).toMatchObject({
      RETENTION_STATE_MACHINE_ARN: { Ref: 'RetentionStateMachine' },
      READINESS_STATE_MACHINE_ARN: { Ref: 'ReadinessStateMachine' },
    });
  });

  it.each(['Retention', 'Readiness'])('binds the %s state machine to its function alone', (job) => {
    const machine = template.Resources[`${job}StateMachine`]!.Properties!;
    expect(machine.DefinitionSubstitutions).toEqual({
      [`${job}FunctionArn`]: { 'Fn::GetAtt': [`${job}LambdaFunction`, 'Arn'] },
      RunsBucket: { Ref: 'RunsBucket' },
    });
    expect(machine.StateMachineType).toBe('STANDARD');
    const role = template.Resources[`${job}StateMachineRole`]!.Properties!;
    const statements = (
      role.Policies as { PolicyDocument: { Statement: { Action: string; Resource: unknown[] }[] } }[]
    ).flatMap((p) => p.PolicyDocument.Statement);
    const invoke = statements.find((s) => s.Action === 'lambda:InvokeFunction')!;
    expect(new Set(JSON.stringify(invoke.Resource).match(/[A-Za-z]+LambdaFunction/g))).toEqual(
      new Set([`${job}LambdaFunction`]),
    );
  });

  it.each(['Retention', 'Readiness'])(
    'runs the %s units in a Distributed Map of Standard children, reading them from and writing their results to the runs bucket',
    (job) => {
      const machine = template.Resources[`${job}StateMachine`]!.Properties!;
      const definition = JSON.parse(String(machine.DefinitionString)) as { States: Record<string, MapState> };
      const maps = Object.values(definition.States).filter((s) => s.Type === 'Map');
      expect(maps).toHaveLength(1);
      const [map] = maps as [MapState];
      expect(map.ItemProcessor.ProcessorConfig).toEqual({ Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' });
      expect(map.ItemsPath).toBeUndefined();
      expect(map.ItemReader).toMatchObject({
        Resource: 'arn:aws:states:::s3:getObject',
        ReaderConfig: { InputType: 'JSON' },
        Parameters: { Bucket: '${RunsBucket}' },
      });
      expect(map.ResultWriter).toEqual({
        Resource: 'arn:aws:states:::s3:putObject',
        Parameters: { Bucket: '${RunsBucket}', Prefix: `${job.toLowerCase()}/results` },
      });
      // A unit that fails is a failed unit in the report, never the run's failure.
      expect(map.ToleratedFailurePercentage).toBe(100);
      expect(map.MaxConcurrency).toBeGreaterThan(0);
      const aggregate = definition.States.Aggregate as unknown as { Parameters: Record<string, string> };
      expect(aggregate.Parameters['results.$']).toMatch(/\.ResultWriterDetails$/);
    },
  );

  it('keeps the runs in an encrypted, private bucket of its own whose data expires', () => {
    const bucket = template.Resources.RunsBucket!;
    expect(bucket.Type).toBe('AWS::S3::Bucket');
    const p = bucket.Properties!;
    expect(p.BucketName).toBeUndefined();
    expect(p.BucketEncryption).toBeDefined();
    expect(p.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(p.OwnershipControls).toEqual({ Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] });
    const rules = (p.LifecycleConfiguration as { Rules: { Status: string; ExpirationInDays?: number }[] }).Rules;
    expect(rules.some((r) => r.Status === 'Enabled' && (r.ExpirationInDays ?? 0) > 0)).toBe(true);
    for (const fn of ['RetentionLambdaFunction', 'ReadinessLambdaFunction']) {
      const env = (template.Resources[fn]!.Properties!.Environment as { Variables: Record<string, unknown> }).Variables;
      expect(env.RUNS_BUCKET, fn).toEqual({ Ref: 'RunsBucket' });
    }
  });

  it('binds the state machine to the eight task functions and lets its role invoke exactly those', () => {
    const machine = template.Resources.ReplicateStateMachine!.Properties!;
    const tasks = [
      'CheckSource',
      'StartCopy',
      'AwaitCopy',
      'AwaitSlot',
      'CheckCopy',
      'FinalizeCopy',
      'CleanupCopy',
      'Summarize',
    ];
    expect(machine.DefinitionSubstitutions).toEqual(
      Object.fromEntries(tasks.map((t) => [`${t}FunctionArn`, { 'Fn::GetAtt': [`${t}LambdaFunction`, 'Arn'] }])),
    );
    const used = new Set([...String(machine.DefinitionString).matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]));
    expect([...used].filter((name) => !(name! in (machine.DefinitionSubstitutions as object)))).toEqual([]);
    const role = template.Resources.ReplicateStateMachineRole!.Properties!;
    const statements = (
      role.Policies as { PolicyDocument: { Statement: { Action: string; Resource: unknown[] }[] } }[]
    ).flatMap((p) => p.PolicyDocument.Statement);
    const invoke = statements.find((s) => s.Action === 'lambda:InvokeFunction')!;
    const invoked = new Set(JSON.stringify(invoke.Resource).match(/[A-Za-z]+LambdaFunction/g));
    expect([...invoked].sort()).toEqual(tasks.map((t) => `${t}LambdaFunction`).sort());
    expect(machine.LoggingConfiguration).toMatchObject({ Level: expect.any(String) });
  });

  it('hands the state machine ARN to the functions that start executions', () => {
    for (const id of ['OnImageEventLambdaFunction', 'ReadinessLambdaFunction']) {
      const variables = (template.Resources[id]!.Properties!.Environment as { Variables: Record<string, unknown> })
        .Variables;
      expect(variables.STATE_MACHINE_ARN, id).toEqual({ Ref: 'ReplicateStateMachine' });
    }
  });
});
