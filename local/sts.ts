import type { ServiceHandler } from './http.ts';
import { queryError, queryResponse } from './query-protocol.ts';

const XMLNS = 'https://sts.amazonaws.com/doc/2011-06-15/';

export interface StsContext {
  accountId: string;
  /** The caller's principal name; the twin has one identity per account. */
  userName?: string;
}

/** STS over awsQuery: the caller is the twin's one IAM user in its one account. */
export function createStsService(ctx: StsContext): ServiceHandler {
  const userName = ctx.userName ?? 'ami-dr-local';
  return (request) => {
    if (request.action !== 'GetCallerIdentity') {
      return queryError(400, 'InvalidAction', `The action ${request.action || '(none)'} is not valid for this web service.`, request.requestId, XMLNS);
    }
    return queryResponse(
      'GetCallerIdentity',
      XMLNS,
      {
        Arn: `arn:aws:iam::${ctx.accountId}:user/${userName}`,
        UserId: `AIDA${ctx.accountId}LOCAL`,
        Account: ctx.accountId,
      },
      request.requestId,
    );
  };
}
