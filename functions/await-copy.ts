import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { taskClients } from '../lib/aws/clients.ts';
import { policyMemberClients } from '../lib/aws/member-clients.ts';
import { loadPolicyFromEnv } from '../lib/config.ts';
import { logger } from '../lib/observability.ts';
import { awaitCopy } from '../lib/workflows/replication.ts';

/** Replication task (WaitForCopy, `.waitForTaskToken`): stores the token for the copy's event, checks the copy once. */
const table = process.env.COPY_WAITS_TABLE;
if (!table) throw new Error('COPY_WAITS_TABLE is not set');
const clients = taskClients();
const policy = loadPolicyFromEnv();
// A source in a member account (organization reach) is worked on through that account's role.
const clientsFor = policyMemberClients(clients, policy);
const deps = { clients, policy, clientsFor, table };

export const handler = middy(async (event: unknown) => awaitCopy(event, deps)).use(injectLambdaContext(logger));
