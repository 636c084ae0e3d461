import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { replicationTaskDeps } from '../lib/config.ts';
import { logger } from '../lib/observability.ts';
import { checkSource } from '../lib/workflows/replication.ts';

/** Replication task: is the source image ready to copy. Input and output: lib/domain/replication-steps.ts. */
const deps = replicationTaskDeps();

export const handler = middy(async (event: unknown) => checkSource(event, deps)).use(injectLambdaContext(logger));
