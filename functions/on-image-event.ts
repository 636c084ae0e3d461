import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { Context } from 'aws-lambda';
import { defaultClients } from '../lib/aws/clients.ts';
import { memberTest, policyMemberClients } from '../lib/aws/member-clients.ts';
import { loadPolicyFromEnv } from '../lib/config.ts';
import { logger } from '../lib/observability.ts';
import { handleImageEvent } from '../lib/workflows/replication.ts';

/**
 * EventBridge target for CloudTrail CreateImage/CopyImage/RegisterImage and EC2 AMI State Change. A malformed event
 * throws MalformedEventError: Lambda's bounded async retries, then the dead-letter queue.
 */
const policy = loadPolicyFromEnv();
const clients = defaultClients();
const stateMachineArn = required('STATE_MACHINE_ARN');
const roleArnPrefix = process.env.AMI_DR_ROLE_ARN_PREFIX || undefined;

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

/** The function's own ARN names the account it runs in (arn:aws:lambda:<region>:<account>:function:<name>). */
const accountOf = (context: Context) => context.invokedFunctionArn.split(':')[4] ?? '';

// Organization reach: members' events arrive through their forwarding rule, and are worked on in the member.
const clientsFor = policyMemberClients(clients, policy);

export const handler = middy(async (event: unknown, context: Context) => {
  const accountId = accountOf(context);
  return handleImageEvent(event, {
    clients,
    policy,
    stateMachineArn,
    roleArnPrefix,
    accountId,
    clientsFor,
    isMember: memberTest(policy, accountId),
    memberRoleName: policy.organization?.memberRole,
  });
}).use(injectLambdaContext(logger));
