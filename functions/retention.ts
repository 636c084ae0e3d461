import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { Context } from 'aws-lambda';
import * as z from 'zod';
import { defaultClients } from '../lib/aws/clients.ts';
import { loadPolicyFromEnv } from '../lib/config.ts';
import { retentionMetrics } from '../lib/domain/retention-report.ts';
import { logger, metrics } from '../lib/observability.ts';
import { runRetentionEverywhere } from '../lib/workflows/retention.ts';
import { retentionTask } from '../lib/workflows/scheduled-retention.ts';
import { scheduledUnitClients } from '../lib/workflows/organization.ts';
import { taskClients } from '../lib/aws/clients.ts';

/**
 * The retention state machine's tasks (an event with `step`: plan, unit, aggregate; see
 * lib/workflows/scheduled-retention.ts). Invoked by hand without `step`: retention in every source and DR region: every region inventoried and planned before anything changes,
 * then each plan applied within the time budget and reported. Work the budget cannot fit is left for the next run,
 * which plans again from what is there.
 */
const policy = loadPolicyFromEnv();
const clients = defaultClients();
/** Time kept back from the Lambda's remaining time to log, publish metrics and return. */
const MARGIN_MS = 30_000;

const eventSchema = z.looseObject({ time: z.string().optional(), dryRun: z.boolean().optional() });
const home = process.env.AWS_REGION ?? policy.regions.sources[0] ?? 'us-east-1';
/** The account and the units' clients (member sessions kept while the Lambda stays warm). */
let units: ReturnType<typeof scheduledUnitClients> | undefined;

export class RetentionRunError extends Error {
  override name = 'RetentionRunError';
}

export const handler = middy(async (event: unknown, context: Context) => {
  const deadline = Date.now() + context.getRemainingTimeInMillis() - MARGIN_MS;
  if (event && typeof event === 'object' && 'step' in event) {
    units ??= scheduledUnitClients(policy, taskClients(), home);
    const deps = { policy, ...(await units), homeRegion: home };
    const out = await retentionTask(deps, event, deadline);
    if ('metrics' in out) for (const m of out.metrics) metrics.addMetric(m.name, m.unit, m.value);
    return out;
  }
  const input = eventSchema.parse(event ?? {});
  const result = await runRetentionEverywhere({
    clients,
    policy,
    ...(input.dryRun !== undefined ? { dryRun: input.dryRun } : {}),
    deadline,
  });
  const reports = result.runs.map((r) => r.report);
  for (const m of retentionMetrics(reports, result.failures.length)) metrics.addMetric(m.name, m.unit, m.value);
  for (const run of result.runs) {
    const { region, dryRun, complete, counts, keptByReason, gibFreed, estimatedMonthlySaving, warnings, errors } =
      run.report;
    logger.info('retention run', {
      region,
      dryRun,
      complete,
      counts,
      keptByReason,
      gibFreed,
      estimatedMonthlySaving,
      reportLocation: run.reportLocation,
      calls: run.calls,
    });
    if (warnings.length)
      logger.warn('retention warnings', { region, warnings: warnings.slice(0, 50), total: warnings.length });
    if (errors.length) logger.warn('retention errors', { region, errors: errors.slice(0, 50), total: errors.length });
  }
  if (result.skipped.length) logger.warn('retention regions left for the next run', { regions: result.skipped });
  if (result.failures.length) {
    throw new RetentionRunError(
      `retention failed in ${result.failures.map((f) => `${f.region} (${f.code}: ${f.message})`).join('; ')}`,
    );
  }
  return {
    regions: result.runs.map((r) => ({
      region: r.report.region,
      complete: r.report.complete,
      counts: r.report.counts,
      gibFreed: r.report.gibFreed,
      reportLocation: r.reportLocation,
    })),
    skipped: result.skipped,
  };
})
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics));
