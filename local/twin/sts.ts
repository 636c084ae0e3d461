import { randomBytes } from 'node:crypto';
import { TwinServiceError, type ServiceHandler } from './http.ts';
import { evaluate, type Iam } from './iam.ts';
import { accessKeyIdOf, resolveIdentity, type CallerIdentity } from './identity.ts';
import { namesPrincipal } from './kms-access.ts';
import { queryResponse, queryService } from './query-protocol.ts';

const XMLNS = 'https://sts.amazonaws.com/doc/2011-06-15/';

export interface StsContext {
  accountId: string;
  /** Access key id -> principal ARN, as the rest of the twin resolves callers (see identity.ts). */
  identities?: Record<string, string>;
  /** Why the caller may not assume the role (the member role missing, or its trust refusing); undefined: allowed. */
  authorize?: (caller: CallerIdentity, roleArn: string, externalId: string | undefined) => string | undefined;
  /** Roles of modelled accounts: their sessions get the role's policy, and their trust policy is evaluated. */
  iam?: Iam;
}

/**
 * Into an account whose IAM the twin models, AssumeRole needs the role to exist and its trust policy to name the
 * caller (its account root or its role ARN, conditions evaluated with `aws:PrincipalArn`); AWS answers both
 * failures alike, AccessDenied (IAM user guide: id_roles_use_permissions-to-switch, reference_policies_elements_principal).
 */
function refusal(iam: Iam | undefined, roleArn: string, account: string, caller: CallerIdentity): string | undefined {
  if (!iam?.models(account)) return undefined;
  const role = iam.role(roleArn);
  const principal = { accountId: caller.accountId, arns: [caller.arn, ...(caller.roleArn ? [caller.roleArn] : [])] };
  const trusted =
    role &&
    evaluate(
      // A trust policy's statements name no Resource: the role itself is the resource.
      role.trust.filter((statement) => namesPrincipal(statement, principal)).map((s) => ({ Resource: '*', ...s })),
      { action: 'sts:AssumeRole', resource: roleArn, context: { 'aws:PrincipalArn': caller.roleArn ?? caller.arn } },
    ) === 'Allow';
  return trusted
    ? undefined
    : `User: ${caller.arn} is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`;
}

/**
 * STS over awsQuery: GetCallerIdentity answers with the principal the signing access key maps to; AssumeRole hands
 * out session credentials whose key maps to `assumed-role/<role>/<session>` in the role's account (accounts are told
 * apart by the ARN a key maps to). Trust policies are evaluated for the roles of modelled accounts (see `refusal`)
 * and for an organization's member roles (`authorize`); where both apply, both must allow.
 */
export function createStsService(ctx: StsContext): ServiceHandler {
  return queryService(XMLNS, {
    AssumeRole: (request) => {
      const roleArn = request.params.RoleArn ?? '';
      const session = request.params.RoleSessionName ?? '';
      const match = /^arn:aws:iam::(\d{12}):role\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]+)$/.exec(roleArn);
      if (!match) throw new TwinServiceError('ValidationError', `${roleArn} is not a valid role ARN.`);
      if (!/^[\w+=,.@-]{2,64}$/.test(session))
        throw new TwinServiceError('ValidationError', `RoleSessionName ${session} is not valid.`);
      const [, account, roleName] = match as unknown as [string, string, string];
      const authorization = request.headers.authorization;
      const caller = resolveIdentity(
        accessKeyIdOf(typeof authorization === 'string' ? authorization : undefined),
        ctx.accountId,
        ctx.identities,
      );
      const refused =
        refusal(ctx.iam, roleArn, account, caller) ?? ctx.authorize?.(caller, roleArn, request.params.ExternalId);
      if (refused) throw new TwinServiceError('AccessDenied', refused, 403);
      const accessKeyId = `ASIA${randomBytes(8).toString('hex').toUpperCase()}`;
      const arn = `arn:aws:sts::${account}:assumed-role/${roleName}/${session}`;
      (ctx.identities ??= {})[accessKeyId] = arn;
      const role = ctx.iam?.role(roleArn);
      if (role) ctx.iam?.attach({ accessKeyId, arn, statements: role.statements });
      const assumed = resolveIdentity(accessKeyId, ctx.accountId, ctx.identities);
      const seconds = Number(request.params.DurationSeconds ?? 3600);
      return queryResponse(
        'AssumeRole',
        XMLNS,
        {
          Credentials: {
            AccessKeyId: accessKeyId,
            SecretAccessKey: randomBytes(20).toString('base64'),
            SessionToken: randomBytes(32).toString('base64'),
            Expiration: new Date(Date.now() + seconds * 1000).toISOString(),
          },
          AssumedRoleUser: { AssumedRoleId: assumed.principalId, Arn: arn },
        },
        request.requestId,
      );
    },
    GetCallerIdentity: (request) => {
      const authorization = request.headers.authorization;
      const caller = resolveIdentity(
        accessKeyIdOf(typeof authorization === 'string' ? authorization : undefined),
        ctx.accountId,
        ctx.identities,
      );
      return queryResponse(
        'GetCallerIdentity',
        XMLNS,
        { Arn: caller.arn, UserId: caller.principalId, Account: caller.accountId },
        request.requestId,
      );
    },
  });
}
