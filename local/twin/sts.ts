import { randomBytes } from 'node:crypto';
import { TwinServiceError, type ServiceHandler } from './http.ts';
import { accessKeyIdOf, resolveIdentity, type CallerIdentity } from './identity.ts';
import { queryResponse, queryService } from './query-protocol.ts';

const XMLNS = 'https://sts.amazonaws.com/doc/2011-06-15/';

export interface StsContext {
  accountId: string;
  /** Access key id -> principal ARN, as the rest of the twin resolves callers (see identity.ts). */
  identities?: Record<string, string>;
  /** Why the caller may not assume the role (the member role missing, or its trust refusing); undefined: allowed. */
  authorize?: (caller: CallerIdentity, roleArn: string, externalId: string | undefined) => string | undefined;
}

/**
 * STS over awsQuery: GetCallerIdentity answers with the principal the signing access key maps to; AssumeRole hands
 * out session credentials whose key maps to `assumed-role/<role>/<session>` in the role's account (accounts are told
 * apart by the ARN a key maps to). Trust policies are evaluated only for an organization's member roles (`authorize`).
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
      const [, account, roleName] = match;
      const authorization = request.headers.authorization;
      const assumer = resolveIdentity(
        accessKeyIdOf(typeof authorization === 'string' ? authorization : undefined),
        ctx.accountId,
        ctx.identities,
      );
      const denied = ctx.authorize?.(assumer, roleArn, request.params.ExternalId);
      if (denied) throw new TwinServiceError('AccessDenied', denied, 403);
      const accessKeyId = `ASIA${randomBytes(8).toString('hex').toUpperCase()}`;
      const arn = `arn:aws:sts::${account}:assumed-role/${roleName}/${session}`;
      (ctx.identities ??= {})[accessKeyId] = arn;
      const caller = resolveIdentity(accessKeyId, ctx.accountId, ctx.identities);
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
          AssumedRoleUser: { AssumedRoleId: caller.principalId, Arn: arn },
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
