import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { reachesMembers } from '../../lib/domain/organization.ts';
import type { Policy } from '../../lib/domain/policy.ts';
import { packageRoot } from '../../lib/package-root.ts';
import type { PolicyStatement } from '../twin/iam.ts';

/**
 * Each Lambda function's role as serverless.yml declares it, for one deployment (stage, region, account, policy):
 * the YAML read directly and its few variables and intrinsics resolved the way osls and CloudFormation would
 * (`${self:custom.*}`, the policy's `${file(./lib/build/policy-env.cjs):…}` values, Fn::Sub with the pseudo
 * parameters, Ref to the state machine and topic, Fn::If on the policy's conditions, AWS::NoValue). Reading the
 * YAML rather than the packaged template keeps the twin free of a packaging step and lets each test's policy shape
 * the key statements, as it shapes a real deployment's.
 */

interface PolicyEnv {
  copyKeyStatementsFor(policy: Readonly<Policy>): unknown[];
  describeKeyStatementsFor(policy: Readonly<Policy>): unknown[];
  retentionRegionsFor(policy: Readonly<Policy>): string[];
  bundleObjectArnsFor(policy: Readonly<Policy>): unknown[];
  bundleBucketArnsFor(policy: Readonly<Policy>): unknown[];
  journalObjectArnsFor(policy: Readonly<Policy>): unknown[];
  finalizeKeyStatementsFor(policy: Readonly<Policy>): unknown[];
  readinessKeyStatementsFor(policy: Readonly<Policy>): unknown[];
  memberRoleNameFor(policy: Readonly<Policy>): string;
  memberRoleArnsFor(policy: Readonly<Policy>): unknown[];
  drillKeyStatementsFor(policy: Readonly<Policy>): unknown[];
  drRoleArnsFor(policy: Readonly<Policy>): string[];
  drillRoleArnsFor(policy: Readonly<Policy>): string[];
  drAccountEventSendersFor(policy: Readonly<Policy>, region: string): string;
  drAccountEventPrincipalsFor(policy: Readonly<Policy>, region: string): unknown[];
}

export interface Deployment {
  policy: Readonly<Policy>;
  stage: string;
  region: string;
  accountId: string;
  /** The region that runs the scheduled work (serverless.yml's custom.home); default the first source region. */
  home?: string;
}

export interface FunctionRole {
  /** serverless.yml's key of the function: startCopy, retention, ... */
  functionKey: string;
  roleName: string;
  roleArn: string;
  statements: PolicyStatement[];
}

interface ServerlessDocument {
  service: string;
  custom?: { homeOnly?: { functions?: string[] } };
  functions: Record<string, { role?: string }>;
  resources: {
    Resources: Record<string, { Type: string; Condition?: string; Properties?: Record<string, unknown> }>;
    Conditions?: Record<string, unknown>;
  };
}

export function functionRoles(deployment: Deployment, file = join(packageRoot(), 'serverless.yml')): FunctionRole[] {
  const doc = readServerless(file);
  const roles = new Map(templateRoles(deployment, file, doc).map((r) => [r.logicalId, r]));
  const home = deployment.home ?? deployment.policy.regions.sources[0];
  // Outside the home region the stack has no scheduled functions (lib/build/home-region.cjs), so no roles for them.
  const absent = deployment.region === home ? [] : (doc.custom?.homeOnly?.functions ?? []);
  return Object.entries(doc.functions).flatMap(([functionKey, fn]) => {
    if (absent.includes(functionKey)) return [];
    const role = fn.role ? roles.get(fn.role) : undefined;
    return role ? [{ functionKey, roleName: role.roleName, roleArn: role.roleArn, statements: role.statements }] : [];
  });
}

/** One `AWS::IAM::Role` of serverless.yml, resolved for a deployment. */
export interface TemplateRole {
  logicalId: string;
  roleName: string;
  roleArn: string;
  statements: PolicyStatement[];
}

/** Every IAM role serverless.yml declares (the functions' and the state machine's), resolved for a deployment. */
export function templateRoles(
  deployment: Deployment,
  file = join(packageRoot(), 'serverless.yml'),
  doc = readServerless(file),
): TemplateRole[] {
  const resolve = resolver(doc, deployment);
  return Object.entries(doc.resources.Resources).flatMap(([logicalId, resource]) => {
    if (resource.Type !== 'AWS::IAM::Role') return [];
    const properties = resolve(resource.Properties) as {
      RoleName: string;
      Policies?: { PolicyDocument: { Statement: PolicyStatement | PolicyStatement[] } }[];
    };
    const statements = (properties.Policies ?? []).flatMap((p) => [p.PolicyDocument.Statement].flat());
    return [
      {
        logicalId,
        roleName: properties.RoleName,
        roleArn: `arn:aws:iam::${deployment.accountId}:role/${properties.RoleName}`,
        statements,
      },
    ];
  });
}

function readServerless(file: string): ServerlessDocument {
  return parseYaml(readFileSync(file, 'utf8'), { merge: true }) as ServerlessDocument;
}

const NO_VALUE = Symbol('AWS::NoValue');

function resolver(
  doc: ServerlessDocument,
  d: Deployment,
): ((value: unknown) => unknown) & { holds(condition: string): boolean } {
  const env = createRequire(import.meta.url)(join(packageRoot(), 'lib', 'build', 'policy-env.cjs')) as PolicyEnv;
  const functionPrefix = `${doc.service}-${d.stage}`;
  const fileValues: Record<string, () => unknown> = {
    copyKeyStatements: () => env.copyKeyStatementsFor(d.policy),
    describeKeyStatements: () => env.describeKeyStatementsFor(d.policy),
    retentionRegions: () => env.retentionRegionsFor(d.policy),
    bundleObjectArns: () => env.bundleObjectArnsFor(d.policy),
    bundleBucketArns: () => env.bundleBucketArnsFor(d.policy),
    journalObjectArns: () => env.journalObjectArnsFor(d.policy),
    finalizeKeyStatements: () => env.finalizeKeyStatementsFor(d.policy),
    readinessKeyStatements: () => env.readinessKeyStatementsFor(d.policy),
    memberRoleName: () => env.memberRoleNameFor(d.policy),
    memberRoleArns: () => env.memberRoleArnsFor(d.policy),
    drillKeyStatements: () => env.drillKeyStatementsFor(d.policy),
    drillConsumerRoleArn: () => d.policy.drill?.consumerRoleArn ?? '',
    drRoleArns: () => env.drRoleArnsFor(d.policy),
    drillRoleArns: () => env.drillRoleArnsFor(d.policy),
    hasDrAccounts: () => (env.drillRoleArnsFor(d.policy).length ? 'true' : ''),
    drAccountEventSenders: () => env.drAccountEventSendersFor(d.policy, d.region),
    drAccountEventPrincipals: () => env.drAccountEventPrincipalsFor(d.policy, d.region),
    reportBucket: () => d.policy.retention.reportBucket ?? '',
    reportPrefix: () => d.policy.retention.reportPrefix,
    notificationTopicArn: () => d.policy.notifications.snsTopicArn ?? '',
  };
  const variables: Record<string, string> = {
    'self:service': doc.service,
    'sls:stage': d.stage,
    'self:provider.region': d.region,
    'self:custom.functionPrefix': functionPrefix,
    'self:custom.rolePrefix': `${functionPrefix}-${d.region}`,
    'self:custom.copyWaitsTable': `${functionPrefix}-copy-waits`,
    'self:custom.copyQueueTable': `${functionPrefix}-copy-queue`,
  };
  const pseudo: Record<string, string> = {
    'AWS::Partition': 'aws',
    'AWS::Region': d.region,
    'AWS::AccountId': d.accountId,
  };
  const refs: Record<string, string> = {
    ...pseudo,
    ...Object.fromEntries(
      ['replicate', 'retention', 'readiness'].map((job) => [
        `${job[0]!.toUpperCase()}${job.slice(1)}StateMachine`,
        `arn:aws:states:${d.region}:${d.accountId}:stateMachine:${functionPrefix}-${job}`,
      ]),
    ),
    AlarmTopic: `arn:aws:sns:${d.region}:${d.accountId}:${functionPrefix}-alarms`,
    RunsBucket: localRunsBucket(functionPrefix, d.accountId),
  };
  const attributes: Record<string, string> = {
    'EventsDeadLetterQueue.Arn': `arn:aws:sqs:${d.region}:${d.accountId}:${functionPrefix}-events-dlq`,
    'CopyWaitsTable.Arn': `arn:aws:dynamodb:${d.region}:${d.accountId}:table/${functionPrefix}-copy-waits`,
    'CopyQueueTable.Arn': `arn:aws:dynamodb:${d.region}:${d.accountId}:table/${functionPrefix}-copy-queue`,
    // serverless names a function's resource `<Key>LambdaFunction` and the function `<service>-<stage>-<key>`.
    ...Object.fromEntries(
      Object.keys(doc.functions).map((key) => [
        `${key[0]!.toUpperCase()}${key.slice(1)}LambdaFunction.Arn`,
        `arn:aws:lambda:${d.region}:${d.accountId}:function:${functionPrefix}-${key}`,
      ]),
    ),
  };
  const conditions: Record<string, () => boolean> = {
    HasReportBucket: () => Boolean(d.policy.retention.reportBucket),
    HasBundleBuckets: () => Boolean(d.policy.retention.bundleBuckets?.length),
    HasNotificationTopic: () => Boolean(d.policy.notifications.snsTopicArn),
    HasDrillConsumer: () => Boolean(d.policy.drill?.consumerRoleArn),
    HasDrAccounts: () => env.drillRoleArnsFor(d.policy).length > 0,
    ReachesMembers: () => reachesMembers(d.policy),
    HasOrganization: () => d.policy.organization !== undefined,
    ReceivesDrAccountEvents: () => env.drAccountEventSendersFor(d.policy, d.region) !== '',
  };

  const text = (value: string): unknown => {
    const whole = /^\$\{file\(\.\/lib\/build\/policy-env\.cjs\):(\w+)\}$/.exec(value);
    if (whole) return file(whole[1]!);
    return value
      .replace(/\$\{file\(\.\/lib\/build\/policy-env\.cjs\):(\w+)\}/g, (_, name: string) => String(file(name)))
      .replace(/\$\{((?:self|sls):[\w.]+)\}/g, (_, name: string) => {
        const found = variables[name];
        if (found === undefined) throw new Error(`serverless.yml: no local value for \${${name}}`);
        return found;
      });
  };
  const file = (name: string): unknown => {
    const value = fileValues[name];
    if (!value) throw new Error(`serverless.yml: no local value for policy-env.cjs:${name}`);
    return value();
  };
  const sub = (template: string): string =>
    template.replace(
      /\$\{([\w:.]+)\}/g,
      (match, name: string) => pseudo[name] ?? attributes[name] ?? refs[name] ?? match,
    );

  const resolve = (value: unknown): unknown => {
    if (typeof value === 'string') {
      const resolved = text(value);
      return typeof resolved === 'string' ? resolved : resolve(resolved);
    }
    if (Array.isArray(value)) return value.map(resolve).filter((v) => v !== NO_VALUE);
    if (!value || typeof value !== 'object') return value;
    const o = value as Record<string, unknown>;
    if ('Ref' in o) {
      if (o.Ref === 'AWS::NoValue') return NO_VALUE;
      const ref = refs[String(o.Ref)];
      if (ref === undefined) throw new Error(`serverless.yml: no local value for Ref ${String(o.Ref)}`);
      return ref;
    }
    if ('Fn::Sub' in o) {
      const arg = resolve(o['Fn::Sub']);
      return sub(Array.isArray(arg) ? String(arg[0]) : String(arg));
    }
    if ('Fn::GetAtt' in o) {
      const [logicalId, attribute] = o['Fn::GetAtt'] as string[];
      const got = attributes[`${logicalId}.${attribute}`];
      if (got === undefined) throw new Error(`serverless.yml: no local value for Fn::GetAtt ${logicalId}.${attribute}`);
      return got;
    }
    if ('Fn::If' in o) {
      const [name, yes, no] = o['Fn::If'] as [string, unknown, unknown];
      const holds = conditions[name];
      if (!holds) throw new Error(`serverless.yml: no local value for condition ${name}`);
      return resolve(holds() ? yes : no);
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) {
      const r = resolve(v);
      if (r !== NO_VALUE) out[k] = r;
    }
    return out;
  };
  return Object.assign(resolve, { holds: (name: string) => conditions[name]?.() ?? false });
}

/** One `AWS::Events::EventBusPolicy` statement of serverless.yml, on the default bus of the deployment's region. */
export interface BusPolicyStatement extends PolicyStatement {
  Sid: string;
  Principal: '*' | { AWS?: string | string[] };
}

/**
 * The statements serverless.yml puts on the deployment region's default event bus (its `AWS::Events::EventBusPolicy`
 * resources whose condition holds there), resolved for the deployment: what PutPermission would leave on the bus.
 */
export function templateBusPolicies(
  deployment: Deployment,
  file = join(packageRoot(), 'serverless.yml'),
  doc = readServerless(file),
): BusPolicyStatement[] {
  const resolve = resolver(doc, deployment);
  return Object.values(doc.resources.Resources).flatMap((resource) => {
    if (resource.Type !== 'AWS::Events::EventBusPolicy') return [];
    if (resource.Condition && !resolve.holds(resource.Condition)) return [];
    const p = resolve(resource.Properties) as { StatementId: string; Statement: Omit<BusPolicyStatement, 'Sid'> };
    return [{ ...p.Statement, Sid: p.StatementId }];
  });
}

/** The home stack's runs bucket on the twin (CloudFormation names it on AWS: serverless.yml's RunsBucket). */
export const localRunsBucket = (functionPrefix: string, accountId: string): string =>
  `${functionPrefix}-runs-${accountId}`;

/** The access key id the twin maps to a function's role in a deployment region (alphanumeric, as AWS's are). */
export function roleAccessKeyId(functionKey: string, region: string): string {
  return `AMIDR${functionKey}${region}`.replace(/[^A-Za-z0-9]/g, '').toUpperCase();
}
