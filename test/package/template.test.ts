import { loadAwsServiceSpec } from '@aws-cdk/aws-service-spec';
import type { PropertyType, Resource, SpecDatabase } from '@aws-cdk/service-spec-types';
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
}, 600_000);

const PSEUDO = new Set([
  'AWS::AccountId',
  'AWS::NoValue',
  'AWS::Partition',
  'AWS::Region',
  'AWS::StackId',
  'AWS::StackName',
  'AWS::URLSuffix',
  'AWS::NotificationARNs',
]);

function specOf(type: string): Resource | undefined {
  return db.lookup('resource', 'cloudFormationType', 'equals', type)[0];
}

function isIntrinsic(value: unknown): boolean {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length === 1 && (keys[0] === 'Ref' || keys[0]!.startsWith('Fn::'));
}

/** Problems with a value against its property type; intrinsic functions stand for any value of the right type. */
function checkValue(value: unknown, type: PropertyType, at: string): string[] {
  if (isIntrinsic(value)) return [];
  switch (type.type) {
    case 'ref': {
      const def = db.get('typeDefinition', type.reference);
      if (!value || typeof value !== 'object' || Array.isArray(value))
        return [`${at}: expected an object (${def.name})`];
      return checkProperties(value as Record<string, unknown>, def.properties, at);
    }
    case 'array':
      if (!Array.isArray(value)) return [`${at}: expected a list`];
      return value.flatMap((v, i) => checkValue(v, type.element, `${at}[${i}]`));
    case 'map':
      if (!value || typeof value !== 'object' || Array.isArray(value)) return [`${at}: expected a map`];
      return Object.entries(value).flatMap(([k, v]) => checkValue(v, type.element, `${at}.${k}`));
    case 'union':
      return type.types.some((t) => checkValue(value, t, at).length === 0)
        ? []
        : [`${at}: matches none of the allowed types`];
    case 'string':
    case 'date-time':
      return typeof value === 'string' || typeof value === 'number' ? [] : [`${at}: expected a string`];
    case 'integer':
    case 'number':
      return typeof value === 'number' ||
        (typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value)))
        ? []
        : [`${at}: expected a number`];
    case 'boolean':
      return typeof value === 'boolean' || value === 'true' || value === 'false' ? [] : [`${at}: expected a boolean`];
    default:
      return [];
  }
}

function checkProperties(value: Record<string, unknown>, properties: Resource['properties'], at: string): string[] {
  const problems: string[] = [];
  for (const [name, property] of Object.entries(properties)) {
    if (property.required && value[name] === undefined) problems.push(`${at}.${name}: required property missing`);
  }
  for (const [name, v] of Object.entries(value)) {
    const property = properties[name];
    if (!property) problems.push(`${at}.${name}: unknown property`);
    else problems.push(...checkValue(v, property.type, `${at}.${name}`));
  }
  return problems;
}

/** Every Ref, Fn::GetAtt and Fn::Sub reference in a value. */
function references(
  value: unknown,
  found: { ref: string; attribute?: string }[] = [],
): { ref: string; attribute?: string }[] {
  if (Array.isArray(value)) {
    for (const v of value) references(v, found);
  } else if (value && typeof value === 'object') {
    for (const [key, v] of Object.entries(value)) {
      if (key === 'Ref' && typeof v === 'string') found.push({ ref: v });
      else if (key === 'Fn::GetAtt') {
        const [ref, attribute] = Array.isArray(v) ? (v as string[]) : String(v).split(/\.(.*)/);
        found.push({ ref: ref!, attribute });
      } else if (key === 'Fn::Sub') {
        const [text, vars] = Array.isArray(v) ? (v as [string, Record<string, unknown>]) : [v as string, {}];
        for (const [, name] of text.matchAll(/\$\{([^!}][^}]*)\}/g)) {
          const [ref, attribute] = name!.split(/\.(.*)/);
          if (!(ref! in vars)) found.push({ ref: ref!, attribute });
        }
        references(vars, found);
      } else references(v, found);
    }
  }
  return found;
}

describe('packaged CloudFormation template', () => {
  it('uses only resource types CloudFormation knows', () => {
    const unknown = Object.entries(template.Resources)
      .filter(([, r]) => !specOf(r.Type))
      .map(([id, r]) => `${id}: ${r.Type}`);
    expect(unknown).toEqual([]);
  });

  it('gives every resource only known properties, of the right shape, with the required ones present', () => {
    const problems = Object.entries(template.Resources).flatMap(([id, r]) => {
      const spec = specOf(r.Type);
      return spec ? checkProperties(r.Properties ?? {}, spec.properties, id) : [];
    });
    expect(problems).toEqual([]);
  });

  it('refers only to resources, parameters, conditions and attributes that exist', () => {
    const problems: string[] = [];
    const check = (where: string, value: unknown) => {
      for (const { ref, attribute } of references(value)) {
        if (PSEUDO.has(ref) || ref in (template.Parameters ?? {})) continue;
        const target = template.Resources[ref];
        if (!target) problems.push(`${where}: ${ref} does not exist`);
        else if (attribute && !(attribute in (specOf(target.Type)?.attributes ?? {})))
          problems.push(`${where}: ${target.Type} has no attribute ${attribute}`);
      }
    };
    for (const [id, r] of Object.entries(template.Resources)) {
      check(id, r.Properties);
      for (const dep of [r.DependsOn ?? []].flat())
        if (!template.Resources[dep]) problems.push(`${id}: depends on missing ${dep}`);
      if (r.Condition && !(r.Condition in (template.Conditions ?? {})))
        problems.push(`${id}: condition ${r.Condition} is not defined`);
    }
    check('Outputs', template.Outputs);
    check('Conditions', template.Conditions);
    const conditionsUsed = JSON.stringify(template.Resources).matchAll(/"Fn::If":\["([^"]+)"/g);
    for (const [, name] of conditionsUsed)
      if (!(name! in (template.Conditions ?? {}))) problems.push(`Fn::If: condition ${name} is not defined`);
    expect(problems).toEqual([]);
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

  it('schedules retention hourly, readiness every 30 minutes, and drills weekly, off unless the policy opts in', () => {
    const schedules = Object.values(template.Resources)
      .filter((r) => r.Type === 'AWS::Events::Rule' && r.Properties?.ScheduleExpression)
      .map((r) => [
        (r.Properties!.Targets as { Arn: { 'Fn::GetAtt': string[] } }[])[0]!.Arn['Fn::GetAtt'][0],
        `${String(r.Properties!.ScheduleExpression)} ${String(r.Properties!.State)}`,
      ]);
    expect(Object.fromEntries(schedules)).toEqual({
      RetentionLambdaFunction: 'rate(1 hour) ENABLED',
      ReadinessLambdaFunction: 'rate(30 minutes) ENABLED',
      DrillLambdaFunction: 'rate(7 days) DISABLED',
    });
  });

  it('binds the state machine to the seven task functions and lets its role invoke exactly those', () => {
    const machine = template.Resources.ReplicateStateMachine!.Properties!;
    const tasks = ['CheckSource', 'StartCopy', 'AwaitCopy', 'CheckCopy', 'FinalizeCopy', 'CleanupCopy', 'Summarize'];
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
