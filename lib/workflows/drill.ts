import { createClients, ec2Client, s3Client, stsClient, type Clients } from '../aws/clients.ts';
import { listImages } from '../aws/images.ts';
import {
  assumeRole,
  instanceHealth,
  launchInstance,
  listTaggedInstances,
  terminateInstances,
  type InstanceHealth,
  REQUIRED_PERMISSIONS as INSTANCE_PERMISSIONS,
} from '../aws/instances.ts';
import { tagResources } from '../aws/permissions.ts';
import { putJsonReport } from '../aws/reports.ts';
import {
  classifyFailure,
  DRILL_TAG,
  drillTags,
  leftoverInstances,
  planDrills,
  type DrillFailure,
  type DrillPlan,
  type DrillTarget,
  type SkippedDrill,
} from '../domain/drill.ts';
import { drillSettings, type Policy } from '../domain/policy.ts';
import { REPLICA_ROLE, TAG } from '../domain/tags.ts';
import { plural } from '../domain/text.ts';

/** What a drill run calls; serverless.yml's drill role grants exactly these (with tag conditions). */
export const REQUIRED_PERMISSIONS = [...INSTANCE_PERMISSIONS, 'ec2:DescribeImages', 's3:PutObject'] as const;

/** Time between two looks at a launched instance. */
const POLL_MS = 15_000;

export interface DrillResult {
  region: string;
  family: string;
  copyImageId: string;
  name: string;
  sourceImageId?: string;
  /** The account the instance ran in (a consumer's, when the policy names a consumer role). */
  account?: string;
  instanceType?: string;
  instanceId?: string;
  /** `interrupted`: the run was stopped before the drill ended (its instance terminated; nothing recorded). */
  outcome: 'passed' | 'failed' | 'interrupted';
  failure?: DrillFailure;
  reason?: string;
  launchedAt?: string;
  endedAt?: string;
  /** Instance-minutes used (launch to termination). */
  minutes: number;
  /** The instance was terminated by this run (false only when TerminateInstances failed: the next run sweeps it). */
  terminated: boolean;
}

export interface SweptInstance {
  region: string;
  instanceId: string;
  launchTime?: string;
}

export interface DrillReport {
  schemaVersion: 1;
  generatedAt: string;
  policy: string;
  /** The account drills launched in, when not ami-dr's own (consumerRoleArn). */
  consumerRoleArn?: string;
  results: DrillResult[];
  skipped: SkippedDrill[];
  swept: SweptInstance[];
  summary: {
    drills: number;
    passed: number;
    failed: number;
    interrupted: number;
    skipped: number;
    instanceMinutes: number;
  };
}

export interface DrillRunOptions {
  clients: Clients;
  policy: Readonly<Policy>;
  /** Milliseconds since the epoch (the twin's clock on a local run). */
  now(): number;
  /** Waits between looks at an instance (a virtual clock just moves). */
  sleep(ms: number): Promise<void>;
  /** Stops waiting: drills in flight are terminated and reported `interrupted`. */
  signal?: AbortSignal;
  /** Write the JSON report here (beside readiness's reports). */
  report?: { bucket: string; prefix: string; region: string };
  onProgress?: (text: string) => void;
  /** Called with each instance as soon as it is launched (tests interrupt here). */
  onLaunched?: (target: DrillTarget, instanceId: string) => Promise<void> | void;
  pollMs?: number;
}

export interface DrillRun {
  report: DrillReport;
  plan: DrillPlan;
  reportLocation?: string;
}

export class DrillInterruptedError extends Error {
  override name = 'DrillInterruptedError';
}

/**
 * One drill run: in each DR region terminate leftover drill instances (older than an hour), then launch the newest
 * copy of each family within the budget, wait for it to run with passing status checks, terminate it, and record
 * the outcome on the copy and in the report. Every launched instance is terminated on every path of this function;
 * one that a killed process leaves behind is terminated by the next run's sweep.
 */
export async function runDrills(options: DrillRunOptions): Promise<DrillRun> {
  const { clients, policy } = options;
  const settings = drillSettings(policy);
  const started = options.now();
  const generatedAt = new Date(started).toISOString();
  const launchClients = settings.consumerRoleArn
    ? await consumerClients(clients, settings.consumerRoleArn, policy.regions.dr[0]!.region)
    : clients;
  const regions = policy.regions.dr.map((d) => d.region);

  options.onProgress?.('terminating leftover drill instances');
  const swept = (await Promise.all(regions.map((region) => sweep(launchClients, region, started)))).flat();

  options.onProgress?.('listing copies');
  const copies = (
    await Promise.all(
      regions.map((region) =>
        listImages(ec2Client(clients, region), region, {
          owners: ['self'],
          filters: { [`tag:${TAG.role}`]: [REPLICA_ROLE], state: ['available'] },
          includeDisabled: false,
        }),
      ),
    )
  ).flat();
  const plan = planDrills(copies, policy, settings);

  const runId = generatedAt.replace(/\D/g, '').slice(0, 14);
  const results = await Promise.all(
    plan.targets.map((target) =>
      drill(target, {
        ...options,
        launchClients,
        runId,
        timeoutMs: settings.launchTimeoutMinutes * 60_000,
        account: settings.consumerRoleArn?.split(':')[4],
      }),
    ),
  );

  for (const result of results) {
    if (result.outcome === 'interrupted') continue;
    await tagResources(
      ec2Client(clients, result.region),
      [result.copyImageId],
      drillTags(result.outcome, result.failure, result.endedAt ?? generatedAt),
    );
  }

  const report: DrillReport = {
    schemaVersion: 1,
    generatedAt,
    policy: policy.name,
    ...(settings.consumerRoleArn ? { consumerRoleArn: settings.consumerRoleArn } : {}),
    results,
    skipped: plan.skipped,
    swept,
    summary: {
      drills: results.length,
      passed: results.filter((r) => r.outcome === 'passed').length,
      failed: results.filter((r) => r.outcome === 'failed').length,
      interrupted: results.filter((r) => r.outcome === 'interrupted').length,
      skipped: plan.skipped.length,
      instanceMinutes: Math.round(results.reduce((sum, r) => sum + r.minutes, 0) * 10) / 10,
    },
  };
  const run: DrillRun = { report, plan };
  if (options.report) {
    const key = `${options.report.prefix}drills/${generatedAt.replace(/[:.]/g, '-')}.json`;
    run.reportLocation = await putJsonReport(
      s3Client(clients, options.report.region),
      options.report.bucket,
      key,
      report,
    );
  }
  return run;
}

async function consumerClients(clients: Clients, roleArn: string, region: string): Promise<Clients> {
  const credentials = await assumeRole(stsClient(clients, region), roleArn, 'ami-dr-drill');
  return createClients({ ...clients.options, credentials });
}

async function sweep(clients: Clients, region: string, now: number): Promise<SweptInstance[]> {
  const ec2 = ec2Client(clients, region);
  const leftovers = leftoverInstances(await listTaggedInstances(ec2, DRILL_TAG.drill), now);
  await terminateInstances(
    ec2,
    leftovers.map((i) => i.instanceId),
  );
  return leftovers.map((i) => ({
    region,
    instanceId: i.instanceId,
    ...(i.launchTime ? { launchTime: i.launchTime } : {}),
  }));
}

interface DrillContext extends DrillRunOptions {
  launchClients: Clients;
  runId: string;
  timeoutMs: number;
  account?: string;
}

async function drill(target: DrillTarget, ctx: DrillContext): Promise<DrillResult> {
  const result: DrillResult = {
    region: target.region,
    family: target.family,
    copyImageId: target.copyImageId,
    name: target.name,
    ...(target.sourceImageId ? { sourceImageId: target.sourceImageId } : {}),
    ...(ctx.account ? { account: ctx.account } : {}),
    ...(target.instanceType ? { instanceType: target.instanceType } : {}),
    outcome: 'failed',
    minutes: 0,
    terminated: true,
  };
  if (!target.instanceType) {
    return {
      ...result,
      failure: 'unsupported-type',
      reason: target.unsupported,
      endedAt: new Date(ctx.now()).toISOString(),
    };
  }
  const ec2 = ec2Client(ctx.launchClients, target.region);
  let instanceId: string | undefined;
  let launchedAt: number | undefined;
  try {
    ctx.onProgress?.(`launching ${target.copyImageId} (${target.family}) in ${target.region}`);
    const launched = await launchInstance(ec2, {
      imageId: target.copyImageId,
      instanceType: target.instanceType,
      subnetId: target.subnetId,
      securityGroupIds: target.securityGroupIds,
      tags: { [DRILL_TAG.drill]: target.copyImageId, Name: `ami-dr drill ${target.name}` },
      clientToken: `ami-dr-drill-${ctx.runId}-${target.copyImageId}`.slice(0, 64),
    });
    instanceId = launched.instanceId;
    launchedAt = ctx.now();
    result.instanceId = instanceId;
    result.launchedAt = new Date(launchedAt).toISOString();
    await ctx.onLaunched?.(target, instanceId);
    const verdict = await awaitHealthy(ec2, instanceId, launchedAt, ctx);
    Object.assign(result, verdict);
  } catch (error) {
    if (error instanceof DrillInterruptedError) {
      result.outcome = 'interrupted';
      result.reason = error.message;
    } else {
      const e = error as { name?: string; Code?: string; message?: string };
      result.failure = classifyFailure({ code: e.Code ?? e.name, message: e.message });
      result.reason = `${e.name ?? 'Error'}: ${e.message ?? ''}`;
    }
  } finally {
    if (instanceId) {
      try {
        await terminateInstances(ec2, [instanceId]);
      } catch {
        // The next run's sweep terminates it (it is tagged ami-dr:drill from creation).
        result.terminated = false;
      }
    }
    const ended = ctx.now();
    result.endedAt = new Date(ended).toISOString();
    if (launchedAt !== undefined) result.minutes = Math.round(((ended - launchedAt) / 60_000) * 10) / 10;
  }
  return result;
}

/** Polls until the instance runs with both status checks `ok` (passed), ends or is impaired (failed), or times out. */
async function awaitHealthy(
  ec2: ReturnType<typeof ec2Client>,
  instanceId: string,
  launchedAt: number,
  ctx: DrillContext,
): Promise<Pick<DrillResult, 'outcome' | 'failure' | 'reason'>> {
  for (;;) {
    if (ctx.signal?.aborted) throw new DrillInterruptedError('the run was stopped before the drill ended');
    const health: InstanceHealth = await instanceHealth(ec2, instanceId);
    if (health.state === 'running' && health.systemStatus === 'ok' && health.instanceStatus === 'ok')
      return { outcome: 'passed' };
    if (['shutting-down', 'terminated', 'stopping', 'stopped'].includes(health.state)) {
      const reason = health.stateReason?.message ?? `the instance went ${health.state}`;
      return {
        outcome: 'failed',
        failure: classifyFailure({ code: health.stateReason?.code, message: reason }),
        reason,
      };
    }
    if (health.systemStatus === 'impaired' || health.instanceStatus === 'impaired')
      return {
        outcome: 'failed',
        failure: 'status-check',
        reason: `status checks failed (system ${health.systemStatus}, instance ${health.instanceStatus})`,
      };
    if (ctx.now() - launchedAt >= ctx.timeoutMs)
      return {
        outcome: 'failed',
        failure: 'status-check',
        reason: `not running with passing status checks ${plural(Math.round(ctx.timeoutMs / 60_000), 'minute')} after launch (${health.state}, system ${health.systemStatus ?? 'n/a'}, instance ${health.instanceStatus ?? 'n/a'})`,
      };
    // Never past the timeout: a drill's instance-minutes stay within what the plan reserved for it.
    await ctx.sleep(Math.max(1, Math.min(ctx.pollMs ?? POLL_MS, launchedAt + ctx.timeoutMs - ctx.now())));
  }
}
