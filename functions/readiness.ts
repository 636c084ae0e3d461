import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { taskClients } from '../lib/aws/clients.ts';
import { stateMachineArnIn } from '../lib/aws/sfn.ts';
import { loadPolicyFromEnv } from '../lib/config.ts';
import { requiredEnv } from '../lib/env.ts';
import { logger, metrics } from '../lib/observability.ts';
import { scheduledUnitClients } from '../lib/workflows/organization.ts';
import { parseReadinessTask, readinessTask } from '../lib/workflows/scheduled-readiness.ts';

/**
 * The readiness state machine's tasks (statemachines/readiness.asl.json), and nothing else: `plan`, a unit's Map
 * item (`unit`: its source region's images × every DR region, re-driving what is missing) and `aggregate`; see
 * lib/workflows/scheduled-readiness.ts. Any other event is refused (`StepInputError`, naming the field). A run now
 * is an execution of the state machine, or `ami-dr readiness` (README, "Running a job now").
 */
const policy = loadPolicyFromEnv();
const region = process.env.AWS_REGION ?? policy.regions.sources[0] ?? 'us-east-1';
/** The run's unit list and units' results (serverless.yml: RunsBucket). */
const runsBucket = requiredEnv('RUNS_BUCKET');
/** The replicate state machine re-drives start (one per source region, named alike). */
const stateMachineArn = process.env.STATE_MACHINE_ARN;
const stateMachineArnFor = stateMachineArn
  ? (sourceRegion: string) => stateMachineArnIn(stateMachineArn, sourceRegion)
  : undefined;
/** The account and the units' clients (member sessions kept while the Lambda stays warm). */
let units: ReturnType<typeof scheduledUnitClients> | undefined;

export const handler = middy(async (event: unknown) => {
  const task = parseReadinessTask(event);
  units ??= scheduledUnitClients(policy, taskClients(), region);
  const deps = {
    policy,
    ...(await units),
    homeRegion: region,
    runsBucket,
    ...(stateMachineArnFor ? { stateMachineArnFor } : {}),
  };
  const out = await readinessTask(deps, task);
  if ('metrics' in out) for (const m of out.metrics) metrics.addMetric(m.name, m.unit, m.value);
  return out;
})
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics));
