/**
 * Who made a call, from the access key id in the SigV4 credential. AWS resolves the signing key to a principal;
 * the twin maps access key ids to ARNs: configured ones first, then any key starting with `AMIDR` is ami-dr's own
 * Lambda role, anything else a builder's session (a person or a pipeline making images).
 */
export interface CallerIdentity {
  accessKeyId: string;
  arn: string;
  accountId: string;
  /** `AROA…:session` for assumed roles, `AIDA…` for users. */
  principalId: string;
  type: 'AssumedRole' | 'IAMUser' | 'Root';
  /** Assumed roles: the IAM role behind the session (CloudTrail's `sessionContext.sessionIssuer`). */
  roleArn?: string;
}

const CREDENTIAL = /Credential=([^/,\s]+)\//;

export function accessKeyIdOf(authorization: string | undefined): string {
  return CREDENTIAL.exec(authorization ?? '')?.[1] ?? 'anonymous';
}

export function resolveIdentity(
  accessKeyId: string,
  accountId: string,
  identities: Record<string, string> = {},
): CallerIdentity {
  const arn =
    identities[accessKeyId] ??
    (accessKeyId.startsWith('AMIDR')
      ? `arn:aws:sts::${accountId}:assumed-role/ami-dr/${accessKeyId}`
      : `arn:aws:sts::${accountId}:assumed-role/builder/${accessKeyId}`);
  const resource = arn.split(':').slice(5).join(':');
  const arnAccount = arn.split(':')[4] || accountId;
  const roleName = resource.split('/')[1] ?? 'role';
  if (resource.startsWith('assumed-role/')) {
    const session = resource.split('/').slice(2).join('/') || 'session';
    const partition = arn.split(':')[1] ?? 'aws';
    return {
      accessKeyId,
      arn,
      accountId: arnAccount,
      principalId: `AROA${stableSuffix(roleName)}:${session}`,
      type: 'AssumedRole',
      roleArn: `arn:${partition}:iam::${arnAccount}:role/${roleName}`,
    };
  }
  if (resource === 'root') return { accessKeyId, arn, accountId: arnAccount, principalId: arnAccount, type: 'Root' };
  return { accessKeyId, arn, accountId: arnAccount, principalId: `AIDA${stableSuffix(resource)}`, type: 'IAMUser' };
}

function stableSuffix(text: string): string {
  let hash = 0;
  for (const c of text) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return hash.toString(36).toUpperCase().padStart(16, 'X').slice(0, 16);
}
