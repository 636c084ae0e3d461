import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { packageRoot } from '../../lib/package-root.ts';
import type { IamRole, PolicyStatement } from '../twin/iam.ts';
import type { Twin, TwinAccount } from '../twin/twin.ts';

/**
 * A DR account on the twin, set up from deploy/dr-account.yml, the template a DR account deploys: its roles (the
 * replicator ami-dr assumes, the drill role its restore drills assume, the account's own retention role: every
 * `AWS::IAM::Role` of the template) with their identity and trust policies, and the
 * copy key's policy, read from the YAML with its parameters' defaults (or the values given) and the pseudo
 * parameters resolved as CloudFormation would. Reading the shipped template keeps the twin's DR account exactly
 * as strict as the real one.
 */

export const DR_ACCOUNT_TEMPLATE = join(packageRoot(), 'deploy', 'dr-account.yml');

interface TemplateDocument {
  Parameters: Record<string, { Default?: string }>;
  Conditions?: Record<string, unknown>;
  Resources: Record<string, { Type: string; Condition?: string; Properties?: Record<string, unknown> }>;
}

export interface DrAccountStack {
  accountId: string;
  productionAccountId: string;
  region?: string;
  /** Parameter values other than the defaults (ReplicatorRoleName, RetentionRoleName, ...). */
  parameters?: Record<string, string>;
}

export interface DrAccountResources {
  roles: (IamRole & { logicalId: string; roleName: string })[];
  /** The CopyKey's policy document (JSON), as the key would carry it. */
  keyPolicy: string;
  /** The stack region's rules whose targets are another account's event bus, with the role each target uses. */
  forwardingRules: ForwardingRule[];
}

export interface ForwardingRule {
  logicalId: string;
  pattern: Record<string, unknown>;
  targets: { busArn: string; roleArn: string }[];
}

export function readDrAccountTemplate(stack: DrAccountStack, file = DR_ACCOUNT_TEMPLATE): DrAccountResources {
  const doc = parseYaml(readFileSync(file, 'utf8')) as TemplateDocument;
  const values: Record<string, string> = {
    ...Object.fromEntries(Object.entries(doc.Parameters).flatMap(([k, p]) => (p.Default ? [[k, p.Default]] : []))),
    ProductionAccountId: stack.productionAccountId,
    ...stack.parameters,
    'AWS::AccountId': stack.accountId,
    'AWS::Partition': 'aws',
    'AWS::Region': stack.region ?? 'us-east-1',
  };
  const resolve = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(resolve);
    if (!value || typeof value !== 'object') return value;
    const o = value as Record<string, unknown>;
    if ('Ref' in o) return lookup(values, String(o.Ref));
    if ('Fn::Sub' in o)
      return String(o['Fn::Sub']).replace(/\$\{([\w:]+)\}/g, (_, name: string) => lookup(values, name));
    if ('Fn::Equals' in o) {
      const [a, b] = (o['Fn::Equals'] as unknown[]).map(resolve);
      return String(a) === String(b);
    }
    if ('Fn::Not' in o) return !(resolve((o['Fn::Not'] as unknown[])[0]) as boolean);
    if ('Condition' in o && Object.keys(o).length === 1) return holds(String(o.Condition));
    if ('Fn::If' in o) {
      const [name, yes, no] = o['Fn::If'] as [string, unknown, unknown];
      return resolve(holds(name) ? yes : no);
    }
    if ('Fn::GetAtt' in o) {
      // Only a role's Arn is read (a target's RoleArn).
      const [logicalId, attribute] = o['Fn::GetAtt'] as [string, string];
      const role = doc.Resources[logicalId];
      if (role?.Type !== 'AWS::IAM::Role' || attribute !== 'Arn') throw new Error(`no local value for ${logicalId}`);
      return `arn:aws:iam::${stack.accountId}:role/${String(resolve(role.Properties?.RoleName))}`;
    }
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, resolve(v)]));
  };
  const holds = (name: string): boolean => {
    const condition = doc.Conditions?.[name];
    if (condition === undefined) throw new Error(`deploy/dr-account.yml: no condition ${name}`);
    return resolve(condition) === true;
  };
  const roles = Object.entries(doc.Resources)
    .filter(([, r]) => r.Type === 'AWS::IAM::Role')
    .map(([logicalId, r]) => {
      const p = resolve(r.Properties) as {
        RoleName: string;
        AssumeRolePolicyDocument: { Statement: IamRole['trust'] };
        Policies?: { PolicyDocument: { Statement: PolicyStatement[] } }[];
      };
      return {
        logicalId,
        roleName: p.RoleName,
        arn: `arn:aws:iam::${stack.accountId}:role/${p.RoleName}`,
        trust: p.AssumeRolePolicyDocument.Statement,
        statements: (p.Policies ?? []).flatMap((policy) => policy.PolicyDocument.Statement),
      };
    });
  const key = Object.values(doc.Resources).find((r) => r.Type === 'AWS::KMS::Key');
  const keyPolicy = JSON.stringify(resolve(key?.Properties?.KeyPolicy));
  const forwardingRules = Object.entries(doc.Resources)
    .filter(([, r]) => r.Type === 'AWS::Events::Rule' && (!r.Condition || holds(r.Condition)))
    .map(([logicalId, r]) => {
      const p = resolve(r.Properties) as {
        EventPattern: Record<string, unknown>;
        Targets: { Arn: string; RoleArn?: string }[];
      };
      const targets = p.Targets.filter((t) => /^arn:[^:]+:events:[^:]*:\d{12}:event-bus\//.test(t.Arn));
      return {
        logicalId,
        pattern: p.EventPattern,
        targets: targets.map((t) => ({ busArn: t.Arn, roleArn: t.RoleArn ?? '' })),
      };
    })
    .filter((rule) => rule.targets.length > 0);
  return { roles, keyPolicy, forwardingRules };
}

function lookup(values: Record<string, string>, name: string): string {
  const value = values[name];
  if (value === undefined) throw new Error(`deploy/dr-account.yml: no value for ${name}`);
  return value;
}

/** Adds the DR account to the twin with the template's roles defined (idempotent); returns the account. */
export function deployDrAccount(twin: Twin, stack: Omit<DrAccountStack, 'productionAccountId'>): TwinAccount {
  const account = twin.addAccount(stack.accountId);
  const { roles } = readDrAccountTemplate({ ...stack, productionAccountId: twin.accountId });
  for (const role of roles) twin.iam.defineRole(role);
  return account;
}

/**
 * The forwarding rules of the DR account's stack in `region` (deploy/dr-account.yml, read for that region): the
 * local runtime delivers the account's matching events to their target buses through the twin's EventBridge.
 */
export function drAccountForwardingRules(
  productionAccountId: string,
  stack: Omit<DrAccountStack, 'productionAccountId'> & { region: string },
): ForwardingRule[] {
  return readDrAccountTemplate({ ...stack, productionAccountId }).forwardingRules;
}
