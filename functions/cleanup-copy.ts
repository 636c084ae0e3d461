import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { taskClients } from '../lib/aws/clients.ts';
import { policyMemberClients } from '../lib/aws/member-clients.ts';
import { loadPolicyFromEnv } from '../lib/config.ts';
import { logger } from '../lib/observability.ts';
import { cleanupCopy } from '../lib/workflows/replication.ts';

/** Replication task: remove a failed or timed-out copy and its snapshots. Input and output: lib/domain/replication-steps.ts. */
// The copy-slot queue: the slot this copy frees goes to the oldest copy waiting for one in its region.
const queueTable = process.env.COPY_QUEUE_TABLE;
if (!queueTable) throw new Error('COPY_QUEUE_TABLE is not set');
const clients = taskClients();
const policy = loadPolicyFromEnv();
// A source in a member account (organization reach) is worked on through that account's role.
const clientsFor = policyMemberClients(clients, policy);
const deps = { clients, policy, clientsFor, queueTable };

export const handler = middy(async (event: unknown) => cleanupCopy(event, deps)).use(injectLambdaContext(logger));
