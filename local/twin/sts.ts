import type { ServiceHandler } from './http.ts';
import { accessKeyIdOf, resolveIdentity } from './identity.ts';
import { queryResponse, queryService } from './query-protocol.ts';

const XMLNS = 'https://sts.amazonaws.com/doc/2011-06-15/';

export interface StsContext {
  accountId: string;
  /** Access key id -> principal ARN, as the rest of the twin resolves callers (see identity.ts). */
  identities?: Record<string, string>;
}

/** STS over awsQuery: GetCallerIdentity answers with the principal the signing access key maps to. */
export function createStsService(ctx: StsContext): ServiceHandler {
  return queryService(XMLNS, {
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
