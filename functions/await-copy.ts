import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { replicationTaskDeps } from '../lib/config.ts';
import { requiredEnv } from '../lib/env.ts';
import { logger } from '../lib/observability.ts';
import { awaitCopy } from '../lib/workflows/replication.ts';

/** Replication task (WaitForCopy, `.waitForTaskToken`): stores the token for the copy's event, checks the copy once. */
const table = requiredEnv('COPY_WAITS_TABLE');
const deps = { ...replicationTaskDeps(), table };

export const handler = middy(async (event: unknown) => awaitCopy(event, deps)).use(injectLambdaContext(logger));
