import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { replicationTaskDeps } from '../lib/config.ts';
import { logger } from '../lib/observability.ts';
import { startCopy } from '../lib/workflows/replication.ts';

/** Replication task: CopyImage into one DR region, or adopt the copy that exists. Input and output: lib/domain/replication-steps.ts. */
const deps = replicationTaskDeps();

export const handler = middy(async (event: unknown) => startCopy(event, deps)).use(injectLambdaContext(logger));
