import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { replicationTaskDeps } from '../lib/config.ts';
import { logger } from '../lib/observability.ts';
import { checkCopy } from '../lib/workflows/replication.ts';

/** Replication task: state of a copy in its DR region. Input and output: lib/domain/replication-steps.ts. */
const deps = replicationTaskDeps();

export const handler = middy(async (event: unknown) => checkCopy(event, deps)).use(injectLambdaContext(logger));
