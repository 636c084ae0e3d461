import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { Context } from 'aws-lambda';
import { taskClients } from '../lib/aws/clients.ts';
import { loadPolicyFromEnv } from '../lib/config.ts';
import { requiredEnv } from '../lib/env.ts';
import { logger, metrics } from '../lib/observability.ts';
import { scheduledUnitClients } from '../lib/workflows/organization.ts';
import { parseRetentionTask, retentionTask } from '../lib/workflows/scheduled-retention.ts';

/**
 * The retention state machine's tasks (statemachines/retention.asl.json), and nothing else: `plan`, a unit's Map
 * item (`unit`, invoked again while it returns `more`) and `aggregate`; see lib/workflows/scheduled-retention.ts. Any
 * other event is refused (`StepInputError`, naming the field). A run now is an execution of the state machine, or
 * `ami-dr retention apply` (README, "Running a job now").
 */
const policy = loadPolicyFromEnv();
const home = process.env.AWS_REGION ?? policy.regions.sources[0] ?? 'us-east-1';
/** The run's unit list, failures and units' results (serverless.yml: RunsBucket). */
const runsBucket = requiredEnv('RUNS_BUCKET');
/** Time kept back from the Lambda's remaining time to log, publish metrics and return. */
const MARGIN_MS = 30_000;
/** The account and the units' clients (member sessions kept while the Lambda stays warm). */
let units: ReturnType<typeof scheduledUnitClients> | undefined;

export const handler = middy(async (event: unknown, context: Context) => {
  const deadline = Date.now() + context.getRemainingTimeInMillis() - MARGIN_MS;
  const task = parseRetentionTask(event);
  units ??= scheduledUnitClients(policy, taskClients(), home);
  const out = await retentionTask({ policy, ...(await units), homeRegion: home, runsBucket }, task, deadline);
  if ('metrics' in out) for (const m of out.metrics) metrics.addMetric(m.name, m.unit, m.value);
  return out;
})
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics));
