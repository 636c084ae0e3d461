import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import * as z from 'zod';
import { defaultClients } from '../lib/aws/clients.ts';
import { stateMachineArnIn } from '../lib/aws/sfn.ts';
import { runReadiness } from '../lib/workflows/readiness.ts';
import { readinessTask } from '../lib/workflows/scheduled-readiness.ts';
import { scheduledUnitClients } from '../lib/workflows/organization.ts';
import { taskClients } from '../lib/aws/clients.ts';
import { loadPolicyFromEnv } from '../lib/config.ts';
import { readinessMetrics } from '../lib/domain/readiness-metrics.ts';
import { logger, metrics } from '../lib/observability.ts';

/**
 * The readiness state machine's tasks (an event with `step`: plan, unit, aggregate; see
 * lib/workflows/scheduled-readiness.ts). Invoked by hand without `step`: the readiness matrix of every in-scope image × DR region, as metrics and (when the policy names a
 * report bucket) a JSON report; missing and failed images are re-driven, drifted copies repaired. Events are
 * best-effort; this is the backstop that makes the system converge.
 */
const policy = loadPolicyFromEnv();
const clients = defaultClients();
const stateMachineArn = process.env.STATE_MACHINE_ARN;
const region = process.env.AWS_REGION ?? policy.regions.sources[0] ?? 'us-east-1';

const scheduledEventSchema = z.looseObject({ time: z.string().optional() });
const stateMachineArnFor = stateMachineArn
  ? (sourceRegion: string) => stateMachineArnIn(stateMachineArn, sourceRegion)
  : undefined;
/** The account and the units' clients (member sessions kept while the Lambda stays warm). */
let units: ReturnType<typeof scheduledUnitClients> | undefined;

export class ReconciliationError extends Error {
  override name = 'ReconciliationError';
}

export const handler = middy(async (event: unknown) => {
  if (event && typeof event === 'object' && 'step' in event) {
    units ??= scheduledUnitClients(policy, taskClients(), region);
    const deps = { policy, ...(await units), homeRegion: region };
    const out = await readinessTask({ ...deps, ...(stateMachineArnFor ? { stateMachineArnFor } : {}) }, event);
    if ('metrics' in out) for (const m of out.metrics) metrics.addMetric(m.name, m.unit, m.value);
    return out;
  }
  scheduledEventSchema.parse(event ?? {});
  const run = await runReadiness({
    clients,
    policy,
    now: Date.now(),
    reconcile: true,
    stateMachineArnFor,
    report: policy.retention.reportBucket
      ? { bucket: policy.retention.reportBucket, prefix: policy.retention.reportPrefix, region }
      : undefined,
  });
  for (const m of readinessMetrics(
    run.report,
    run.reconciliation?.redriven.filter((r) => r.result === 'started').length ?? 0,
  )) {
    metrics.addMetric(m.name, m.unit, m.value);
  }
  const errors = run.reconciliation?.errors ?? [];
  logger.info('readiness computed', {
    summary: run.report.summary,
    redriven: run.reconciliation?.redriven.length,
    repaired: run.reconciliation?.repaired.length,
    manual: run.plan.manual,
    reportLocation: run.reportLocation,
  });
  if (errors.length)
    throw new ReconciliationError(
      `${errors.length} reconciliation actions failed: ${errors.map((e) => `${e.action} ${e.imageId} (${e.region}): ${e.message}`).join('; ')}`,
    );
  return {
    summary: run.report.summary,
    redriven: run.reconciliation?.redriven ?? [],
    repaired: run.reconciliation?.repaired ?? [],
    reportLocation: run.reportLocation,
  };
})
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics));
