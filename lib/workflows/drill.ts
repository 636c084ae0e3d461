import { assumedClients, REQUIRED_PERMISSIONS as ASSUME_PERMISSIONS } from '../aws/assume-role.ts';
import { ec2Client, s3Client, type Clients } from '../aws/clients.ts';
import { listImages } from '../aws/images.ts';
import {
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
import type { ImageRecord } from '../domain/image.ts';
import { drillSettings, type Policy } from '../domain/policy.ts';
import { REPLICA_ROLE, TAG } from '../domain/tags.ts';
import { plural } from '../domain/text.ts';
import { DRILL_ROLE, reachDrAccounts } from './dr-account.ts';

/**
 * What a drill run calls; serverless.yml's drill role grants exactly these (with tag conditions), and in a DR
 * account deploy/dr-account.yml's drill role the EC2 and KMS ones.
 */
export const REQUIRED_PERMISSIONS = [
  ...INSTANCE_PERMISSIONS,
  ...ASSUME_PERMISSIONS,
  'ec2:DescribeImages',
  's3:PutObject',
] as const;

/** Time between two looks at a launched instance. */
const POLL_MS = 15_000;

export interface DrillResult {
  region: string;
  family: string;
  copyImageId: string;
  name: string;
  sourceImageId?: string;
  /** The account the instance ran in (a DR account's, or a consumer's when the policy names a consumer role). */
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
  /** Why the outcome could not be tagged on the copy (the drill itself is reported either way). */
  recordError?: string;
}

/** A DR region whose account's drill role could not be assumed: none of its copies was drilled. */
export interface UnreachedRegion {
  region: string;
  account: string;
  roleArn: string;
  reason: string;
}

export interface SweptInstance {
  region: string;
  /** The account it ran in, when not ami-dr's own (a DR account's, a consumer's). */
  account?: string;
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
  /** DR regions not drilled because their account could not be reached (counted as failures in the metrics). */
  unreached: UnreachedRegion[];
  summary: {
    drills: number;
    passed: number;
    failed: number;
    interrupted: number;
    skipped: number;
    unreached: number;
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
 * Where a DR region's drills run: the account that owns its copies lists and tags them; instances are launched,
 * watched and terminated by that account too (a DR account's drill role), or by the consumer account of
 * `drill.consumerRoleArn` for ami-dr's own copies.
 */
interface DrillSite {
  region: string;
  /** Lists the copies and records the outcome on them. */
  owner: Clients;
  /** Launches, watches and terminates (and sweeps) the drill instances. */
  launch: Clients;
  /** The account the instances run in, when not ami-dr's own. */
  account?: string;
  /** The DR account's drill role the site's clients are a session of. */
  roleArn?: string;
}

/**
 * One drill run: in each DR region terminate leftover drill instances (older than an hour), then launch the newest
 * copy of each family within the budget, wait for it to run with passing status checks, terminate it, and record
 * the outcome on the copy and in the report. A DR account's region is drilled in that account, under its drill role;
 * a DR account whose role cannot be assumed fails only its regions (`unreached`). Every launched instance is
 * terminated on every path of this function; one that a killed process leaves behind is terminated by the next
 * run's sweep.
 */
export async function runDrills(options: DrillRunOptions): Promise<DrillRun> {
  const { clients, policy } = options;
  const settings = drillSettings(policy);
  const started = options.now();
  const generatedAt = new Date(started).toISOString();
  const reached = await drillSites(options, settings.consumerRoleArn);
  const unreached = [...reached.unreached];

  options.onProgress?.('terminating leftover drill instances, listing copies');
  const surveys = await Promise.all(reached.sites.map((site) => survey(site, started)));
  const sites = reached.sites.filter((site, i) => {
    const { error } = surveys[i]!;
    if (!error) return true;
    // A DR account that lets the drill role in but refuses it the first reads fails only its regions, as one that
    // cannot be reached at all; ami-dr's own account refusing them is the run's error.
    if (!site.roleArn) throw error;
    unreached.push({ region: site.region, account: site.account!, roleArn: site.roleArn, reason: text(error) });
    return false;
  });
  const siteOf = new Map(sites.map((site) => [site.region, site]));
  const swept = surveys.flatMap((s) => s.swept);
  const copies = surveys.flatMap((s) => s.copies);
  const plan = planDrills(copies, policy, settings);

  const runId = generatedAt.replace(/\D/g, '').slice(0, 14);
  const results = await Promise.all(
    plan.targets.map((target) =>
      drill(target, {
        ...options,
        site: siteOf.get(target.region)!,
        runId,
        timeoutMs: settings.launchTimeoutMinutes * 60_000,
      }),
    ),
  );

  for (const result of results) {
    if (result.outcome === 'interrupted') continue;
    try {
      await tagResources(
        ec2Client(siteOf.get(result.region)!.owner, result.region),
        [result.copyImageId],
        drillTags(result.outcome, result.failure, result.endedAt ?? generatedAt),
      );
    } catch (error) {
      result.recordError = text(error);
    }
  }

  const report: DrillReport = {
    schemaVersion: 1,
    generatedAt,
    policy: policy.name,
    ...(settings.consumerRoleArn ? { consumerRoleArn: settings.consumerRoleArn } : {}),
    results,
    skipped: plan.skipped,
    swept,
    unreached,
    summary: {
      drills: results.length,
      passed: results.filter((r) => r.outcome === 'passed').length,
      failed: results.filter((r) => r.outcome === 'failed').length,
      interrupted: results.filter((r) => r.outcome === 'interrupted').length,
      skipped: plan.skipped.length,
      unreached: unreached.length,
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

/**
 * The sites of the policy's DR regions: a DR account's through its drill role (the same reach readiness uses, so a
 * role that cannot be assumed is reported, not thrown), ami-dr's own through its clients or the consumer's session.
 */
async function drillSites(
  options: DrillRunOptions,
  consumerRoleArn: string | undefined,
): Promise<{ sites: DrillSite[]; unreached: UnreachedRegion[] }> {
  const { clients, policy } = options;
  const deps = { clients, policy, now: () => new Date(options.now()) };
  const reach = await reachDrAccounts(deps, DRILL_ROLE);
  const own = policy.regions.dr.filter((d) => !d.account);
  const consumer =
    consumerRoleArn && own.length
      ? await assumedClients(clients, consumerRoleArn, own[0]!.region, options.now)
      : undefined;
  const refused = new Set(reach.problems.map((p) => p.region));
  const sites = policy.regions.dr.flatMap((d): DrillSite[] => {
    if (refused.has(d.region)) return [];
    if (d.account) {
      const session = reach.clientsFor(d.region);
      return [
        { region: d.region, owner: session, launch: session, account: d.account, roleArn: DRILL_ROLE.roleArn(d) },
      ];
    }
    return [
      {
        region: d.region,
        owner: clients,
        launch: consumer ?? clients,
        ...(consumerRoleArn ? { account: consumerRoleArn.split(':')[4] } : {}),
      },
    ];
  });
  const unreached = reach.problems.map((p) => ({
    region: p.region,
    account: p.account,
    roleArn: p.roleArn,
    reason: p.message,
  }));
  return { sites, unreached };
}

const text = (error: unknown): string => (error instanceof Error ? `${error.name}: ${error.message}` : String(error));

/** A site's leftover drill instances terminated and its available copies listed, or why that was refused. */
async function survey(
  site: DrillSite,
  now: number,
): Promise<{ swept: SweptInstance[]; copies: ImageRecord[]; error?: unknown }> {
  let swept: SweptInstance[] = [];
  try {
    swept = await sweep(site, now);
    const copies = await listImages(ec2Client(site.owner, site.region), site.region, {
      owners: ['self'],
      filters: { [`tag:${TAG.role}`]: [REPLICA_ROLE], state: ['available'] },
      includeDisabled: false,
    });
    return { swept, copies };
  } catch (error) {
    return { swept, copies: [], error };
  }
}

async function sweep(site: DrillSite, now: number): Promise<SweptInstance[]> {
  const { region } = site;
  const ec2 = ec2Client(site.launch, region);
  const leftovers = leftoverInstances(await listTaggedInstances(ec2, DRILL_TAG.drill), now);
  await terminateInstances(
    ec2,
    leftovers.map((i) => i.instanceId),
  );
  return leftovers.map((i) => ({
    region,
    ...(site.account ? { account: site.account } : {}),
    instanceId: i.instanceId,
    ...(i.launchTime ? { launchTime: i.launchTime } : {}),
  }));
}

interface DrillContext extends DrillRunOptions {
  site: DrillSite;
  runId: string;
  timeoutMs: number;
}

async function drill(target: DrillTarget, ctx: DrillContext): Promise<DrillResult> {
  const result: DrillResult = {
    region: target.region,
    family: target.family,
    copyImageId: target.copyImageId,
    name: target.name,
    ...(target.sourceImageId ? { sourceImageId: target.sourceImageId } : {}),
    ...(ctx.site.account ? { account: ctx.site.account } : {}),
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
  const ec2 = ec2Client(ctx.site.launch, target.region);
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
