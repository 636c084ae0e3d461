import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { replicationTaskDeps } from '../lib/config.ts';
import { requiredEnv } from '../lib/env.ts';
import { logger } from '../lib/observability.ts';
import { cleanupCopy } from '../lib/workflows/replication.ts';

/** Replication task: remove a failed or timed-out copy and its snapshots. Input and output: lib/domain/replication-steps.ts. */
// The copy-slot queue: the slot this copy frees goes to the oldest copy waiting for one in its region.
const queueTable = requiredEnv('COPY_QUEUE_TABLE');
const deps = { ...replicationTaskDeps(), queueTable };

export const handler = middy(async (event: unknown) => cleanupCopy(event, deps)).use(injectLambdaContext(logger));
