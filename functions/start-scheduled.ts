import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
// zod/mini: the same checks, without the chained-method API a cold start would build for a four-field event.
import * as z from 'zod/mini';
import { defaultClients } from '../lib/aws/clients.ts';
import { logger } from '../lib/observability.ts';
import { startScheduledRun } from '../lib/workflows/units.ts';

/**
 * Scheduled (EventBridge): starts the retention or readiness state machine, its execution named after the schedule
 * window (`retention-2026-11-30T10`), so a second start in the same window is refused and nothing runs twice. An
 * EventBridge target cannot name an execution, hence this starter.
 */
const clients = defaultClients();
const machines: Record<string, string | undefined> = {
  retention: process.env.RETENTION_STATE_MACHINE_ARN,
  readiness: process.env.READINESS_STATE_MACHINE_ARN,
};

const eventSchema = z.object({
  job: z.enum(['retention', 'readiness']),
  time: z.iso.datetime(),
  periodMinutes: z.int().check(z.positive()),
  dryRun: z.optional(z.boolean()),
});

export class NoStateMachineError extends Error {
  override name = 'NoStateMachineError';
}

export const handler = middy(async (event: unknown) => {
  const start = eventSchema.parse(event);
  const arn = machines[start.job];
  if (!arn) throw new NoStateMachineError(`no state machine ARN for ${start.job} in the environment`);
  const started = await startScheduledRun(clients, arn, start);
  logger.info(started.alreadyStarted ? 'scheduled run already started' : 'scheduled run started', {
    job: start.job,
    window: started.window.name,
    executionArn: started.executionArn,
  });
  return started;
}).use(injectLambdaContext(logger));
