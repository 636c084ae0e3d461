import { evaluate, type PolicyStatement } from './iam.ts';
import type { TwinKmsKey } from './state.ts';

/**
 * Who may use a KMS key from outside its account: AWS lets another account's principal use a key only when the key
 * policy names that principal (its account root, its account id or its ARN) for the action, or a grant names it as
 * grantee with the operation (KMS developer guide: key-policy-modifying-external-accounts, grants). Within the key's
 * account the default key policy delegates to IAM, which the twin evaluates per role elsewhere.
 */

export interface KeyPrincipal {
  accountId: string;
  /** The caller's ARN (an assumed-role session) and, for sessions, the role's ARN. */
  arns: string[];
}

export function defaultKeyPolicy(accountId: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Id: 'key-default-1',
    Statement: [
      {
        Sid: 'Enable IAM User Permissions',
        Effect: 'Allow',
        Principal: { AWS: `arn:aws:iam::${accountId}:root` },
        Action: 'kms:*',
        Resource: '*',
      },
    ],
  });
}

interface KeyPolicyStatement extends PolicyStatement {
  Principal?: '*' | { AWS?: string | string[] };
}

/** Whether a resource policy's statement names the principal (its account, account root or ARN; `*` names anyone). */
export function namesPrincipal(statement: KeyPolicyStatement, principal: KeyPrincipal): boolean {
  const listed = statement.Principal === '*' ? ['*'] : [statement.Principal?.AWS ?? []].flat();
  return listed.some(
    (p) =>
      p === '*' ||
      p === principal.accountId ||
      p === `arn:aws:iam::${principal.accountId}:root` ||
      principal.arns.includes(p),
  );
}

function grantee(grantPrincipal: string, principal: KeyPrincipal): boolean {
  return (
    grantPrincipal === principal.accountId ||
    grantPrincipal === `arn:aws:iam::${principal.accountId}:root` ||
    principal.arns.includes(grantPrincipal)
  );
}

/** Whether `principal` may perform `action` (`kms:Decrypt`) on the key, by key policy or grant. */
export function keyAllows(
  key: TwinKmsKey,
  ownerAccountId: string,
  principal: KeyPrincipal,
  action: string,
  context: Record<string, string | string[]> = {},
): boolean {
  const policy = JSON.parse(key.policy ?? defaultKeyPolicy(ownerAccountId)) as { Statement?: unknown };
  const statements = [policy.Statement ?? []].flat() as KeyPolicyStatement[];
  const applicable = statements.filter((s) => namesPrincipal(s, principal));
  if (evaluate(applicable, { action, resource: key.arn, context }) === 'Allow') return true;
  const operation = action.replace(/^kms:/, '');
  return key.grants.some((g) => grantee(g.granteePrincipal, principal) && g.operations.includes(operation));
}

/** What a volume from an encrypted snapshot needs of its key (EBS user guide: ebs-encryption-requirements). */
export const LAUNCH_KEY_ACTIONS = ['kms:CreateGrant', 'kms:Decrypt', 'kms:DescribeKey'] as const;
