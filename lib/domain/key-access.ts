import { compileGlob } from './glob.ts';
import type { LaunchPermission } from './image.ts';

/**
 * Whether the consumers a copy is shared with can use its DR key. Sharing an encrypted image is not enough: "If the
 * shared AMI has encrypted snapshots, the owner must share the key or keys with you." Accounts can be given KMS
 * grants; organizations and OUs only a key-policy statement (aws:PrincipalOrgID / aws:PrincipalOrgPaths). Pure:
 * the key's policy and grants in, what is missing (and how to add it) out.
 */

/** What EBS needs of the key to launch from a shared encrypted image (EBS user guide, ebs-encryption-requirements). */
export const KEY_ACCESS_OPERATIONS = [
  'Decrypt',
  'DescribeKey',
  'CreateGrant',
  'GenerateDataKeyWithoutPlaintext',
  'ReEncryptFrom',
  'ReEncryptTo',
] as const;
/** Without these a launch fails; the others are what AWS documents for copying and re-encrypting. */
const LAUNCH_OPERATIONS = ['Decrypt', 'DescribeKey', 'CreateGrant'] as const;

const STATEMENT_ACTIONS = [
  'kms:Decrypt',
  'kms:DescribeKey',
  'kms:CreateGrant',
  'kms:GenerateDataKeyWithoutPlaintext',
  'kms:ReEncrypt*',
];

export interface KeyGrant {
  grantId: string;
  name?: string;
  granteePrincipal: string;
  operations: string[];
}

/** A DR key as far as sharing goes: read once per key (GetKeyPolicy, ListGrants). */
export interface KeyAccess {
  keyArn: string;
  /** The key policy document (JSON); undefined when it could not be read. */
  policy?: string;
  grants: KeyGrant[];
}

export type Consumer =
  | { kind: 'account'; id: string }
  | { kind: 'organization'; id: string; orgId: string }
  | { kind: 'ou'; id: string; orgId: string; ouId: string };

/** The grant ami-dr keeps for an account: found again by this name. */
export const GRANT_PREFIX = 'ami-dr-';
export const grantName = (account: string): string => `${GRANT_PREFIX}${account}`;
export const granteeOf = (account: string): string => `arn:aws:iam::${account}:root`;

/** The principals a set of launch permissions lets launch the image (`all` cannot be: encrypted images are never public). */
export function consumersOf(permissions: readonly LaunchPermission[]): Consumer[] {
  const out = new Map<string, Consumer>();
  for (const p of permissions) {
    if (p.userId) out.set(p.userId, { kind: 'account', id: p.userId });
    else if (p.organizationArn) {
      const orgId = /organization\/(o-[a-z0-9]+)$/.exec(p.organizationArn)?.[1] ?? '';
      out.set(p.organizationArn, { kind: 'organization', id: p.organizationArn, orgId });
    } else if (p.organizationalUnitArn) {
      const m = /ou\/(o-[a-z0-9]+)\/(ou-[a-z0-9-]+)$/.exec(p.organizationalUnitArn);
      out.set(p.organizationalUnitArn, {
        kind: 'ou',
        id: p.organizationalUnitArn,
        orgId: m?.[1] ?? '',
        ouId: m?.[2] ?? '',
      });
    }
  }
  return [...out.values()];
}

interface Statement {
  Effect?: string;
  Principal?: '*' | { AWS?: string | string[] };
  Action?: string | string[];
  NotAction?: unknown;
  Condition?: Record<string, Record<string, string | string[]>>;
}

function statementsOf(policy: string | undefined): Statement[] {
  if (!policy) return [];
  try {
    const doc = JSON.parse(policy) as { Statement?: Statement | Statement[] };
    return [doc.Statement ?? []].flat();
  } catch {
    return [];
  }
}

const allowsLaunch = (s: Statement): boolean => {
  if (s.Effect !== 'Allow' || s.NotAction !== undefined) return false;
  const actions = [s.Action ?? []].flat().map((a) => compileGlob(a.toLowerCase()));
  return LAUNCH_OPERATIONS.every((op) => actions.some((matches) => matches(`kms:${op}`.toLowerCase())));
};

const principalsOf = (s: Statement): string[] => (s.Principal === '*' ? ['*'] : [s.Principal?.AWS ?? []].flat());

/** Condition values of a key, under any operator (StringEquals, StringLike, ForAnyValue:…). */
function conditionValues(s: Statement, key: string): string[] {
  return Object.values(s.Condition ?? {}).flatMap((byKey) =>
    Object.entries(byKey).flatMap(([k, v]) => (k.toLowerCase() === key.toLowerCase() ? [v].flat() : [])),
  );
}

/** Whether the key lets the consumer launch a copy encrypted under it. */
export function consumerCovered(access: KeyAccess, consumer: Consumer): boolean {
  const statements = statementsOf(access.policy).filter(allowsLaunch);
  if (consumer.kind === 'account') {
    const names = new Set([consumer.id, granteeOf(consumer.id)]);
    // A statement naming the account without conditions; one with conditions is not evidence it applies.
    if (statements.some((s) => !s.Condition && principalsOf(s).some((p) => names.has(p)))) return true;
    return access.grants.some(
      (g) => names.has(g.granteePrincipal) && LAUNCH_OPERATIONS.every((op) => g.operations.includes(op)),
    );
  }
  const open = statements.filter((s) => principalsOf(s).includes('*'));
  if (open.some((s) => conditionValues(s, 'aws:PrincipalOrgID').includes(consumer.orgId))) return true;
  // The OU's path has its root in the middle (o-…/r-…/ou-…/), which an OU ARN does not carry: any root matches.
  const path = consumer.kind === 'ou' ? `${consumer.orgId}/r-root/${consumer.ouId}/` : `${consumer.orgId}/r-root/`;
  return open.some((s) =>
    conditionValues(s, 'aws:PrincipalOrgPaths').some((pattern) => {
      const wanted = consumer.kind === 'ou' ? pattern : pattern.replace(/\*$/, '');
      return compileGlob(wanted.replace(/\/r-[a-z0-9]+\//, '/r-root/'))(path);
    }),
  );
}

/** The consumers that cannot use the key. */
export function missingKeyAccess(access: KeyAccess, consumers: readonly Consumer[]): Consumer[] {
  return consumers.filter((c) => !consumerCovered(access, c));
}

/** How a consumer is named in a drift or a problem: the account id, the organization or OU ARN. */
export const consumerLabel = (c: Consumer): string => c.id;

/**
 * The key-policy statements that would let these consumers launch: one for accounts (by root), one per organization
 * (aws:PrincipalOrgID), one for OUs (aws:PrincipalOrgPaths). Ready to paste into the key policy's Statement list.
 */
export function keyPolicyStatements(consumers: readonly Consumer[]): Record<string, unknown>[] {
  const statements: Record<string, unknown>[] = [];
  const accounts = consumers.filter((c) => c.kind === 'account');
  if (accounts.length)
    statements.push({
      Sid: 'AmiDrLaunchSharedCopiesAccounts',
      Effect: 'Allow',
      Principal: { AWS: accounts.map((a) => granteeOf(a.id)) },
      Action: STATEMENT_ACTIONS,
      Resource: '*',
    });
  for (const org of consumers.filter((c) => c.kind === 'organization')) {
    statements.push({
      Sid: `AmiDrLaunchSharedCopies${org.orgId.replace(/-/g, '')}`,
      Effect: 'Allow',
      Principal: { AWS: '*' },
      Action: STATEMENT_ACTIONS,
      Resource: '*',
      Condition: { StringEquals: { 'aws:PrincipalOrgID': org.orgId } },
    });
  }
  const ous = consumers.flatMap((c) => (c.kind === 'ou' ? [c] : []));
  if (ous.length)
    statements.push({
      Sid: 'AmiDrLaunchSharedCopiesOUs',
      Effect: 'Allow',
      Principal: { AWS: '*' },
      Action: STATEMENT_ACTIONS,
      Resource: '*',
      Condition: { 'ForAnyValue:StringLike': { 'aws:PrincipalOrgPaths': ous.map((o) => `${o.orgId}/*/${o.ouId}/*`) } },
    });
  return statements;
}

export interface GrantPlan {
  /** Accounts to grant the key to (CreateGrant, named grantName(account)). */
  create: string[];
  /** ami-dr's grants for accounts no copy under the key is shared with any more. */
  retire: KeyGrant[];
}

/**
 * What to change on a key so exactly the accounts ami-dr shares copies with hold its grants. Only grants ami-dr
 * named are retired; `keep` undefined leaves every existing grant alone (the full set of accounts is not known).
 */
export function planGrants(access: KeyAccess, wanted: readonly string[], keep?: ReadonlySet<string>): GrantPlan {
  const create = [...new Set(wanted)].filter((account) => !consumerCovered(access, { kind: 'account', id: account }));
  const retire = keep
    ? access.grants.filter((g) => {
        if (!g.name?.startsWith(GRANT_PREFIX)) return false;
        const account = g.name.slice(GRANT_PREFIX.length);
        return !keep.has(account) && g.granteePrincipal === granteeOf(account);
      })
    : [];
  return { create, retire };
}
