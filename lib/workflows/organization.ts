import { type Clients, organizationsClient, s3Client } from '../aws/clients.ts';
import { memberClients, MemberRoleMissingError, type ClientsFor } from '../aws/member-clients.ts';
import { listOrganizationAccounts, ORGANIZATIONS_RATE } from '../aws/organizations.ts';
import { TokenBucketPacer } from '../aws/pacer.ts';
import { putJsonReport } from '../aws/reports.ts';
import { awsErrorName } from '../domain/errors.ts';
import { accountsOfRun, memberAccounts, memberRoleArn, reachesMembers } from '../domain/organization.ts';
import type { Policy } from '../domain/policy.ts';
import { summarize, type AccountOutcome, type ReadinessReport } from '../domain/readiness.ts';
import { runReadiness, type ReadinessRun, type ReadinessRunOptions } from './readiness.ts';
import {
  runRetentionEverywhere,
  shareOfDeadline,
  type EverywhereOptions,
  type ScheduledRetention,
} from './retention.ts';

/**
 * Organization reach: the existing per-account workflows, run once per account with that account's clients. A
 * loop on purpose (a state machine's Map over account × region units can replace it): one account failing, its
 * role missing above all, is reported and the others still run.
 */

/** Organizations is a global service with its endpoint in us-east-1 (aws partition). */
const ORGANIZATIONS_REGION = 'us-east-1';

export interface Reach {
  homeAccountId: string;
  /** Member accounts, in order (home excluded). */
  members: string[];
  clientsFor: ClientsFor;
}

export interface ReachOptions {
  clients: Clients;
  policy: Readonly<Policy>;
  homeAccountId: string;
  /** The home account's partition (from its role ARN); default `aws`. */
  partition?: string;
  /** Region for STS; default the policy's first source region. */
  region?: string;
  now?: () => number;
  /** Waits for the Organizations pacer (a ManualClock's advance in tests); default a timer. */
  sleep?: (ms: number) => Promise<void>;
}

/** The accounts a run covers (listed and discovered) and how to reach each. */
export async function resolveReach(options: ReachOptions): Promise<Reach> {
  const { policy, clients, homeAccountId } = options;
  const discovered = policy.organization
    ? await listOrganizationAccounts(
        organizationsClient(clients, ORGANIZATIONS_REGION),
        policy.organization.ous,
        new TokenBucketPacer({ limits: { describe: ORGANIZATIONS_RATE }, now: options.now, sleep: options.sleep }),
      )
    : [];
  const members = reachesMembers(policy) ? memberAccounts(policy, discovered, homeAccountId) : [];
  const clientsFor = memberClients({
    home: clients,
    homeAccountId,
    region: options.region ?? policy.regions.sources[0] ?? ORGANIZATIONS_REGION,
    roleArnOf: (account) => memberRoleArn(policy, account, options.partition),
    externalId: policy.organization?.externalId,
    now: options.now,
  });
  return { homeAccountId, members, clientsFor };
}

/** An account that could not be worked in: `role-missing` when AssumeRole was refused. */
function outcomeOf(account: string, error: unknown): AccountOutcome {
  if (error instanceof MemberRoleMissingError) return { account, status: 'role-missing', message: error.message };
  return { account, status: 'failed', message: `${awsErrorName(error) ?? 'Error'}: ${(error as Error).message}` };
}

export interface OrganizationReadiness {
  /** One report over every account: rows carry `account`, `accounts` says how each went. */
  report: ReadinessReport;
  runs: { account: string; run: ReadinessRun }[];
  reportLocation?: string;
}

/**
 * Readiness in every account of the reach, one report. Re-driving and repairs (`reconcile`) happen in the home
 * account only: a member's copies are made by the home state machine, which a member's run cannot start.
 */
export async function runReadinessForAccounts(
  reach: Reach,
  options: Omit<ReadinessRunOptions, 'clients'>,
): Promise<OrganizationReadiness> {
  const runs: OrganizationReadiness['runs'] = [];
  const outcomes: AccountOutcome[] = [];
  for (const account of accountsOfRun(reach.homeAccountId, reach.members)) {
    try {
      const clients = await reach.clientsFor(account);
      const home = account === reach.homeAccountId;
      const run = await runReadiness({ ...options, clients, reconcile: home && options.reconcile, report: undefined });
      for (const row of run.report.rows) row.account = account;
      runs.push({ account, run });
      outcomes.push({ account, status: 'ok' });
    } catch (error) {
      outcomes.push(outcomeOf(account, error));
    }
  }
  const first = runs[0]?.run.report;
  const rows = runs.flatMap((r) => r.run.report.rows);
  const report: ReadinessReport = {
    generatedAt: first?.generatedAt ?? new Date(options.now).toISOString(),
    policy: first?.policy ?? { name: options.policy.name, version: '' },
    sourceRegions: [...options.policy.regions.sources],
    drRegions: options.policy.regions.dr.map((d) => d.region),
    rows,
    summary: summarize(rows),
    accounts: outcomes,
  };
  const result: OrganizationReadiness = { report, runs };
  if (options.report) {
    const home = await reach.clientsFor(reach.homeAccountId);
    const key = `${options.report.prefix}readiness/${report.generatedAt.replace(/[:.]/g, '-')}.json`;
    await putJsonReport(s3Client(home, options.report.region), options.report.bucket, key, report);
    result.reportLocation = `s3://${options.report.bucket}/${key}`;
  }
  return result;
}

export interface AccountRetention {
  account: string;
  outcome: AccountOutcome;
  /** The account's regions' runs (their reports carry `accountId`); absent when the account was not reached. */
  retention?: ScheduledRetention;
}

/** Retention in every account of the reach, one after the other, sharing the deadline as regions do. */
export async function runRetentionForAccounts(
  reach: Reach,
  options: Omit<EverywhereOptions, 'clients' | 'accountId' | 'saved'>,
): Promise<AccountRetention[]> {
  const clock = options.clock ?? Date.now;
  const accounts = accountsOfRun(reach.homeAccountId, reach.members);
  const results: AccountRetention[] = [];
  for (const [i, account] of accounts.entries()) {
    try {
      const clients = await reach.clientsFor(account);
      const deadline = shareOfDeadline(options.deadline, clock(), accounts.length - i);
      const retention = await runRetentionEverywhere({ ...options, clients, accountId: account, deadline });
      results.push({ account, outcome: { account, status: 'ok' }, retention });
    } catch (error) {
      results.push({ account, outcome: outcomeOf(account, error) });
    }
  }
  return results;
}
