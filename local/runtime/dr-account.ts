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
  Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }>;
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
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, resolve(v)]));
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
  return { roles, keyPolicy };
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
