import { setTimeout as sleep } from 'node:timers/promises';
import { callerAccountId } from '../aws/account.ts';
import { stateMachineArnIn } from '../aws/sfn.ts';
import { createClients, stsClient } from '../aws/clients.ts';
import type { CommandContext, Session, SessionOptions } from './command.ts';

/** The stage `serverless deploy` used when none is given; the state machine's name follows from it. */
const DEFAULT_STAGE = 'dev';

/**
 * Connects a command to AWS (credentials from the usual chain: AWS_PROFILE, env, SSO...; endpoint from
 * AWS_ENDPOINT_URL) or, with --local, to a twin started for this run.
 */
export async function openSession(ctx: CommandContext, options: SessionOptions): Promise<Session> {
  const policy = ctx.policy();
  const region =
    options.region ?? ctx.env.AWS_REGION ?? ctx.env.AWS_DEFAULT_REGION ?? policy.regions.sources[0] ?? 'us-east-1';
  if (ctx.flags.local) {
    const { startLocalSession } = await import('./local.ts');
    return startLocalSession(ctx, policy, region, options.role);
  }
  const clients = createClients();
  const accountId = await callerAccountId(stsClient(clients, region));
  const configured = ctx.env.STATE_MACHINE_ARN ?? ctx.env.AMI_DR_STATE_MACHINE_ARN;
  const stage = ctx.env.AMI_DR_STAGE ?? DEFAULT_STAGE;
  return {
    clients,
    accountId,
    region,
    stateMachineArnFor: (sourceRegion) =>
      configured
        ? stateMachineArnIn(configured, sourceRegion)
        : `arn:aws:states:${sourceRegion}:${accountId}:stateMachine:ami-dr-${stage}-replicate`,
    now: () => Date.now(),
    sleep: (ms) => sleep(ms),
  };
}
