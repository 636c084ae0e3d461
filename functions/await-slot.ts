import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { taskClients } from '../lib/aws/clients.ts';
import { loadPolicyFromEnv } from '../lib/config.ts';
import { logger } from '../lib/observability.ts';
import { awaitCopySlot } from '../lib/workflows/copy-queue.ts';

/** Replication task (WaitForSlot, `.waitForTaskToken`): parks the token in the copy-slot queue of the copy's region. */
const queueTable = process.env.COPY_QUEUE_TABLE;
if (!queueTable) throw new Error('COPY_QUEUE_TABLE is not set');
const deps = { clients: taskClients(), policy: loadPolicyFromEnv(), queueTable };

export const handler = middy(async (event: unknown) => awaitCopySlot(event, deps)).use(injectLambdaContext(logger));
