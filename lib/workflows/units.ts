import { sfnClient, type Clients } from '../aws/clients.ts';
import { startExecution, type StartedExecution } from '../aws/sfn.ts';

/**
 * Scheduled work (retention, readiness) is split into work units, one per account and region, each run by its own
 * Lambda invocation inside a Step Functions Map. A unit's calls go through the clients `clientsFor(unit)` returns:
 * today every unit is in the deployment's own account, so it returns the function's own clients; a member account
 * of an organization plugs in here (clients under a role assumed in that account) without touching the workflows.
 */
export interface WorkUnit {
  accountId: string;
  region: string;
}

/** The clients a unit's calls are made with. */
export type UnitClients = (unit: WorkUnit) => Clients | Promise<Clients>;

/** Every unit of the account in the regions given, in their order. */
export function accountUnits(accountId: string, regions: readonly string[]): WorkUnit[] {
  return regions.map((region) => ({ accountId, region }));
}

export const unitKey = (unit: WorkUnit): string => `${unit.accountId}/${unit.region}`;

/** The own account's clients for every unit (the default until member accounts are governed). */
export const ownAccount =
  (clients: Clients): UnitClients =>
  () =>
    clients;

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
