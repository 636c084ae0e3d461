import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { Context } from 'aws-lambda';
import { setTimeout as sleep } from 'node:timers/promises';
import * as z from 'zod';
import { defaultClients } from '../lib/aws/clients.ts';
import { loadPolicyFromEnv } from '../lib/config.ts';
import { drillMetrics } from '../lib/domain/drill.ts';
import { drillSettings } from '../lib/domain/policy.ts';
import { logger, metrics } from '../lib/observability.ts';
import { runDrills } from '../lib/workflows/drill.ts';

/**
 * Scheduled (weekly by default, when drill.enabled): restore drills of the newest copy of each family in each DR
 * region. A failed drill is an outcome, reported by the DrillsFailed metric and its alarm; errors of the run itself
 * are thrown. Drills still waiting when the Lambda's time is nearly up are terminated and reported interrupted.
 */
const policy = loadPolicyFromEnv();
const clients = defaultClients();
const region = process.env.AWS_REGION ?? policy.regions.sources[0] ?? 'us-east-1';
/** Time kept back to terminate what is in flight, tag the copies and write the report. */
const MARGIN_MS = 60_000;

const scheduledEventSchema = z.looseObject({ time: z.string().optional() });

export const handler = middy(async (event: unknown, context: Context) => {
  scheduledEventSchema.parse(event ?? {});
  if (!drillSettings(policy).enabled) {
    logger.info('drills are off (drill.enabled is false)');
    return { skipped: 'drill.enabled is false' };
  }
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), Math.max(0, context.getRemainingTimeInMillis() - MARGIN_MS));
  try {
    const run = await runDrills({
      clients,
      policy,
      now: () => Date.now(),
      sleep: (ms) => sleep(ms),
      signal: deadline.signal,
      report: policy.retention.reportBucket
        ? { bucket: policy.retention.reportBucket, prefix: policy.retention.reportPrefix, region }
        : undefined,
    });
    for (const m of drillMetrics(run.report.summary)) metrics.addMetric(m.name, m.unit, m.value);
    logger.info('drills done', {
      summary: run.report.summary,
      failed: run.report.results
        .filter((r) => r.outcome === 'failed')
        .map((r) => ({ region: r.region, copyImageId: r.copyImageId, failure: r.failure, reason: r.reason })),
      unreached: run.report.unreached,
      unrecorded: run.report.results
        .filter((r) => r.recordError)
        .map((r) => ({ region: r.region, copyImageId: r.copyImageId, recordError: r.recordError })),
      swept: run.report.swept.length,
      reportLocation: run.reportLocation,
    });
    return { summary: run.report.summary, reportLocation: run.reportLocation };
  } finally {
    clearTimeout(timer);
  }
})
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics));
