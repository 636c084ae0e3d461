import { sfnClient, type Clients } from '../aws/clients.ts';
import type { ClientsFor } from '../aws/member-clients.ts';
import { startExecution, type StartedExecution } from '../aws/sfn.ts';

/**
 * Scheduled work (retention, readiness) is split into work units, one per account and region, each run by its own
 * Lambda invocation inside a Step Functions Distributed Map (a child execution per unit). The plan step lists the accounts once per run (the home account,
 * then the organization's members: lib/workflows/organization.ts) and every unit names its account, so a unit's
 * invocation needs no Organizations call: its calls go through the clients `clientsFor(unit)` returns, the
 * function's own in the home account, a member's role session elsewhere.
 */
export interface WorkUnit {
  accountId: string;
  region: string;
}

/** The clients a unit's calls are made with. */
export type UnitClients = (unit: WorkUnit) => Clients | Promise<Clients>;

/** Every unit of the accounts in the regions given: account by account, regions in their order. */
export function accountUnits(accounts: readonly string[], regions: readonly string[]): WorkUnit[] {
  return accounts.flatMap((accountId) => regions.map((region) => ({ accountId, region })));
}

/** The accounts of a run's units, home first (every account of a run has a unit, done or failed). */
export function accountsOfUnits(homeAccountId: string, units: readonly WorkUnit[]): string[] {
  const members = [...new Set(units.map((u) => u.accountId))].filter((a) => a !== homeAccountId).sort();
  return [homeAccountId, ...members];
}

export const unitKey = (unit: WorkUnit): string => `${unit.accountId}/${unit.region}`;

/**
 * A unit's messages as its result carries them (its state passes between its states on every invocation, and the
 * aggregate reads every unit's): the first or last few, each cut short. The full messages are in the unit's own
 * report.
 */
export function briefMessages(messages: readonly string[], which: 'first' | 'last'): string[] {
  const few = which === 'first' ? messages.slice(0, UNIT_MESSAGES) : messages.slice(-UNIT_MESSAGES);
  return few.map((m) => (m.length > UNIT_MESSAGE_CHARS ? `${m.slice(0, UNIT_MESSAGE_CHARS - 1)}…` : m));
}
export const UNIT_MESSAGES = 3;
export const UNIT_MESSAGE_CHARS = 200;

/** The run's report in the aggregate step's result (the execution's output) above this size would crowd 256 KiB. */
export const OUTPUT_REPORT_LIMIT_BYTES = 200_000;

/**
 * The run's report as the aggregate step returns it, which is the execution's output and so under Step Functions'
 * 256 KiB payload quota: whole while it fits, else without its per-unit lists (`omitted` counts them; the report
 * written to the bucket has them all), and then without its failures' detail too.
 */
export function reportWithinQuota<R extends { units: unknown[]; failures: unknown[] }>(
  report: R,
): R & { omitted?: { units: number; failures?: number } } {
  const fits = (r: unknown) => Buffer.byteLength(JSON.stringify(r)) <= OUTPUT_REPORT_LIMIT_BYTES;
  if (fits(report)) return report;
  const withoutUnits = { ...report, units: [], omitted: { units: report.units.length } };
  if (fits(withoutUnits)) return withoutUnits;
  return { ...withoutUnits, failures: [], omitted: { units: report.units.length, failures: report.failures.length } };
}

/**
 * A unit's clients: the function's own in the home account, else the member's through its role (`members`, whose
 * sessions a warm Lambda keeps). A unit of another account without member clients is a policy that reaches no
 * member: refused.
 */
export const reachClients =
  (home: Clients, homeAccountId: string, members?: ClientsFor): UnitClients =>
  (unit) => {
    if (unit.accountId === homeAccountId) return home;
    if (!members) throw new Error(`unit ${unitKey(unit)}: the policy reaches no account but ${homeAccountId}`);
    return members(unit.accountId);
  };

/** A schedule window: the period of the schedule the run belongs to. Times are ISO 8601. */
export interface ScheduleWindow {
  /** `<job>-2026-11-30T10` (hourly) or `<job>-2026-11-30T10-30` (shorter periods): the execution's name. */
  name: string;
  start: string;
  end: string;
}

export type ScheduledJob = 'retention' | 'readiness';

/**
 * The window `time` falls in for a schedule of `periodMinutes` (windows start at midnight UTC), named so that two
 * starts in the same window name the same execution: Step Functions refuses a second execution of that name, so
 * two runs of one window never overlap.
 */
export function scheduleWindow(job: ScheduledJob, time: number, periodMinutes: number): ScheduleWindow {
  const period = Math.max(1, Math.round(periodMinutes)) * 60_000;
  const start = Math.floor(time / period) * period;
  const iso = new Date(start).toISOString();
  const hour = iso.slice(0, 13);
  const minutes = iso.slice(14, 16);
  const name = period % 3_600_000 === 0 ? `${job}-${hour}` : `${job}-${hour}-${minutes}`;
  return { name, start: iso, end: new Date(start + period).toISOString() };
}

/** What the schedule hands the starter: the job, the event's time, and the schedule's period. */
export interface ScheduledStart {
  job: ScheduledJob;
  /** The scheduled event's time (ISO 8601). */
  time: string;
  periodMinutes: number;
  dryRun?: boolean;
}

/**
 * Starts the job's state machine for the window `time` falls in, named after it. A start whose window already has
 * an execution (running, or finished) is `alreadyStarted`: a duplicate delivery of the schedule, or a window whose
 * run is still going, never runs the job twice at once.
 */
export async function startScheduledRun(
  clients: Clients,
  stateMachineArn: string,
  start: ScheduledStart,
): Promise<StartedExecution & { window: ScheduleWindow }> {
  const window = scheduleWindow(start.job, Date.parse(start.time), start.periodMinutes);
  const input = { window, dryRun: start.dryRun === true };
  const started = await startExecution(
    sfnClient(clients, stateMachineArn.split(':')[3] ?? 'us-east-1'),
    stateMachineArn,
    window.name,
    input,
  );
  return { ...started, window };
}
