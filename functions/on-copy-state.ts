import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { Context } from 'aws-lambda';
import { defaultClients } from '../lib/aws/clients.ts';
import { loadPolicyFromEnv } from '../lib/config.ts';
import { requiredEnv } from '../lib/env.ts';
import { logger } from '../lib/observability.ts';
import { handleCopyStateEvent } from '../lib/workflows/replication.ts';

/**
 * EventBridge target in a DR region for EC2 AMI State Change (`available`, `failed`), the account's own and those its
 * DR account forwards: wakes the replication waiting for that copy in its source region. A malformed event throws:
 * Lambda's async retries, then the dead-letter queue.
 */
const table = requiredEnv('COPY_WAITS_TABLE');
const deps = { clients: defaultClients(), policy: loadPolicyFromEnv(), table };

/** The function's own ARN names the account it runs in (arn:aws:lambda:<region>:<account>:function:<name>). */
const accountOf = (context: Context) => context.invokedFunctionArn.split(':')[4] ?? '';

export const handler = middy(async (event: unknown, context: Context) =>
  handleCopyStateEvent(event, { ...deps, accountId: accountOf(context) }),
).use(injectLambdaContext(logger));
