import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { taskClients } from '../lib/aws/clients.ts';
import { requiredEnv } from '../lib/env.ts';
import { logger } from '../lib/observability.ts';
import { awaitCopySlot, leaveCopySlotQueue } from '../lib/workflows/copy-queue.ts';

/**
 * Replication tasks of the copy-slot queue: WaitForSlot (`.waitForTaskToken`) parks the token in the queue of the
 * copy's region; SlotWaitEnded (`leave: true`) takes the branch out of it after a wait that no copy's end woke.
 */
const queueTable = requiredEnv('COPY_QUEUE_TABLE');
const deps = { clients: taskClients(), queueTable };

const leaving = (event: unknown) => (event as { leave?: unknown } | null)?.leave === true;

export const handler = middy(async (event: unknown) =>
  leaving(event) ? leaveCopySlotQueue(event, deps) : awaitCopySlot(event, deps),
).use(injectLambdaContext(logger));
