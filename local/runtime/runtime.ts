import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import { parse as parseYaml } from 'yaml';
import { createClients, TASK_MAX_ATTEMPTS, type Clients } from '../../lib/aws/clients.ts';
import { packageRoot } from '../../lib/package-root.ts';
import type { Policy } from '../../lib/domain/policy.ts';
import type { CopyStatus, SourceCheck } from '../../lib/domain/replication-steps.ts';
import {
  awaitCopy,
  checkCopy,
  checkSource,
  cleanupCopy,
  finalizeCopy,
  handleCopyStateEvent,
  handleImageEvent,
  startCopy,
  summarize,
  type CopyEventOutcome,
  type EventOutcome,
  type LogSink,
  type MetricSink,
  type ReplicationDeps,
} from '../../lib/workflows/replication.ts';
import { awaitCopySlot, leaveCopySlotQueue } from '../../lib/workflows/copy-queue.ts';
import { ManualClock, type Clock } from '../twin/clock.ts';
import type { TwinEvent } from '../twin/events.ts';
import { s3Client } from '../../lib/aws/clients.ts';
import { denialMessage } from '../twin/iam.ts';
import { ensureBucket, mapRunStorage } from '../twin/s3.ts';
import {
  LocalStepFunctions,
  type LocalExecution,
  type MapRunStorage,
  type TaskBinding,
} from '../twin/stepfunctions.ts';
import { startTwin, type Twin, type TwinOptions } from '../twin/twin.ts';
import { functionRoles, localRunsBucket, roleAccessKeyId, templateBusPolicies, templateRoles } from './roles.ts';
import { forwardingPatterns } from './member-template.ts';
import { memberClients, type ClientsFor } from '../../lib/aws/member-clients.ts';
import { memberRoleArn, reachesMembers } from '../../lib/domain/organization.ts';
import { deployDrAccount, drAccountForwardingRules } from './dr-account.ts';
import { assumedClients } from '../../lib/aws/assume-role.ts';
import { drAccounts } from '../../lib/domain/policy.ts';
import { parseRetentionTask, retentionTask, type ScheduledDeps } from '../../lib/workflows/scheduled-retention.ts';
import { parseReadinessTask, readinessTask } from '../../lib/workflows/scheduled-readiness.ts';
import {
  reachClients,
  startScheduledRun,
  type ScheduledJob,
  type ScheduleWindow,
  type UnitClients,
} from '../../lib/workflows/units.ts';

/**
 * ami-dr running on the local twin, wired as serverless.yml wires it on AWS: the twin's events go through the
 * onImageEvent rules' patterns (read from serverless.yml) to the event handler's logic, which starts the replicate
 * state machine (statemachines/replicate.asl.json, executed locally with each task bound to the same lib function
 * its Lambda calls). A handler error is retried as Lambda retries asynchronous invocations, then parked in `dlq`.
 * In the DR regions, the onCopyState rule hands a copy's AMI State Change to its handler, which wakes the
 * replication waiting for that copy in the source region (`loseCopyEvent` drops some, as best-effort delivery may).
 *
 *   const rt = await startLocalRuntime({ policy });
 *   rt.twin.seed.key('us-west-2', { alias: 'ami-dr' });
 *   ... CreateImage through an SDK client pointed at rt.twin.endpoint ...
 *   await rt.waitForIdle();
 *   rt.executions();   // what ran, with status and output
 *   await rt.stop();
 */

// From the package root, not this file: the CLI runs this module from its bundle in dist/cli/ too.
const ASL_FILE = join(packageRoot(), 'statemachines', 'replicate.asl.json');
const SERVERLESS_FILE = join(packageRoot(), 'serverless.yml');

/** The twin attributes calls to ami-dr's own role by this access key prefix (see local/twin/identity.ts). */
const OWN_ACCESS_KEY = 'AMIDRLOCALRUNTIME';

/** The Lambda functions of serverless.yml whose code the runtime runs, each under its own role. */
export type FunctionKey =
  | 'onImageEvent'
  | 'checkSource'
  | 'startCopy'
  | 'checkCopy'
  | 'finalizeCopy'
  | 'cleanupCopy'
  | 'summarize'
  | 'awaitCopy'
  | 'awaitSlot'
  | 'onCopyState'
  | 'retention'
  | 'readiness'
  | 'drill'
  | 'startScheduled';

export interface LocalRuntimeOptions {
  policy: Readonly<Policy>;
  /** Default: a ManualClock (virtual time: waits and copies take no real time). */
  clock?: Clock;
  /** Options for the twin this runtime starts (ignored when `twin` is given). */
  twinOptions?: Omit<TwinOptions, 'clock'>;
  /** Run on a twin that is already started instead (its clock is used). */
  twin?: Twin;
  /** Part of the state machine's name (ami-dr-<stage>-replicate). */
  stage?: string;
  /**
   * The region whose stack runs the scheduled work (retention, readiness), as `--param home=` deploys it; default
   * the policy's first source region. Other regions' stacks have no scheduled functions, so no roles for them.
   */
  homeRegion?: string;
  /** Where handlers log (default: silent; pass `console`-like sink to watch). */
  log?: LogSink;
  /** Wraps a task state's binding, e.g. to inject a fault (a lost Lambda response) in a test. */
  wrapTask?: (state: string, task: TaskBinding) => TaskBinding;
  /**
   * EventBridge is best effort: return `true` to lose a DR region's event before onCopyState sees it (the
   * replication then relies on its fallback checks).
   */
  loseCopyEvent?: (event: TwinEvent) => boolean;
  /**
   * The time budget of one invocation of a retention or readiness task, in twin ms (default: the function's timeout
   * in serverless.yml minus the handler's 30 s margin).
   */
  taskBudgetMs?: number;
  /** The clients of a scheduled run's work unit (default: the function's own, as the Lambda does). */
  unitClients?: (fn: 'retention' | 'readiness') => UnitClients;
  /**
   * Member accounts' twins (local/twin/accounts.ts), on the same endpoint and clock: their image events reach this
   * account's bus through deploy/member-account.yml's forwarding rule, and the replication works in the member
   * through its role (the policy's `accounts` / `organization`).
   */
  memberTwins?: ReadonlyMap<string, Twin>;
}

export interface ScheduledRun {
  executionArn: string;
  /** The window already had an execution: nothing new was started. */
  alreadyStarted: boolean;
  window: ScheduleWindow;
}

export interface CopyEventDelivery {
  event: unknown;
  outcome?: CopyEventOutcome;
  error?: string;
}

export interface DeadLetter {
  event: unknown;
  /** The error name of the last attempt (e.g. MalformedEventError). */
  error: string;
  message: string;
  attempts: number;
}

export interface RecordedMetric {
  name: string;
  unit: string;
  value: number;
  /** Twin time, epoch ms. */
  at: number;
}

export interface EventDelivery {
  event: unknown;
  outcome?: EventOutcome;
  error?: string;
}

export interface LocalRuntime {
  twin: Twin;
  /** Unrestricted clients of ami-dr's account (the twin maps their key to no role): for tests and seeding. */
  clients: Clients;
  /** The region whose stack runs the scheduled work. */
  homeRegion: string;
  /** The home stack's runs bucket (serverless.yml: RunsBucket): the scheduled runs' unit lists and results. */
  runsBucket: string;
  /**
   * Clients of a DR account (deployed from deploy/dr-account.yml): a session of one of its roles (e.g.
   * `ami-dr-dr-retention`), assumed by the account's own administrator, held to that role's policy.
   */
  drAccountClients(accountId: string, roleName: string): Promise<Clients>;
  /**
   * Clients signed as a function's role (serverless.yml's, deployed in `region`, default the home region): the twin
   * refuses them what that role does not allow, as AWS would. retention and readiness exist in the home region only.
   */
  clientsFor(fn: FunctionKey, region?: string): Clients;
  policy: Readonly<Policy>;
  stepFunctions: LocalStepFunctions;
  /** The replicate state machine's ARN in a source region. */
  stateMachineArn(region: string): string;
  /** Every execution started so far, oldest first. */
  executions(): LocalExecution[];
  /** Every event the rules matched, with what the handler did. */
  deliveries: EventDelivery[];
  /** Every DR region event the onCopyState rule matched, with what its handler did. */
  copyDeliveries: CopyEventDelivery[];
  /** The copy-waits table's name (the same in every source region). */
  copyWaitsTable: string;
  /** The copy-slot queue's table's name (the same in every source region). */
  copyQueueTable: string;
  /** Events the handler failed on after Lambda's retries. */
  dlq: DeadLetter[];
  /** Metrics the tasks emitted (instead of EMF on stdout). */
  metrics: RecordedMetric[];
  /** The retention or readiness state machine (deployed in the home region). */
  scheduledStateMachineArn(job: ScheduledJob): string;
  /**
   * What the schedule does: starts the job's state machine for the window `time` (default now) falls in, through
   * the startScheduled function's logic and role. Resolves once started; `waitForIdle` waits for the run.
   */
  startScheduled(job: ScheduledJob, options?: { time?: number; dryRun?: boolean }): Promise<ScheduledRun>;
  /** Puts an event on the bus as if AWS had (applies the rules' patterns and source regions). */
  putEvent(event: unknown): Promise<void>;
  /** Resolves when no event is being handled, no execution runs and the twin has nothing due. */
  waitForIdle(): Promise<void>;
  stop(): Promise<void>;
}

export interface EventRule {
  name: string;
  pattern: Record<string, unknown>;
}

/** A function's EventBridge rules (onImageEvent's by default) and its async retry count, as serverless.yml declares them. */
export function readRules(
  file = SERVERLESS_FILE,
  functionKey = 'onImageEvent',
): { rules: EventRule[]; maximumRetryAttempts: number } {
  const doc = parseYaml(readFileSync(file, 'utf8')) as {
    functions?: Record<
      string,
      {
        maximumRetryAttempts?: number;
        events?: { eventBridge?: { name?: string; pattern?: Record<string, unknown> } }[];
      }
    >;
  };
  const fn = doc.functions?.[functionKey];
  if (!fn) throw new Error(`${file}: no ${functionKey} function`);
  const rules = (fn.events ?? []).flatMap((e, i) =>
    e.eventBridge?.pattern ? [{ name: e.eventBridge.name ?? `rule-${i}`, pattern: e.eventBridge.pattern }] : [],
  );
  if (rules.length === 0) throw new Error(`${file}: ${functionKey} has no eventBridge patterns`);
  return { rules, maximumRetryAttempts: fn.maximumRetryAttempts ?? 2 };
}

/**
 * EventBridge content filtering for the operators ami-dr's rules use: exact values, `prefix`, `suffix`,
 * `anything-but` (values or a prefix), `exists`, `equals-ignore-case`, nested fields, arrays in the event.
 */
export function matchesPattern(pattern: Record<string, unknown>, event: unknown): boolean {
  if (typeof event !== 'object' || event === null) return false;
  const fields = event as Record<string, unknown>;
  return Object.entries(pattern).every(([key, want]) => {
    const value = fields[key];
    if (Array.isArray(want)) return matchesAny(want, value, key in fields);
    if (want && typeof want === 'object') return matchesPattern(want as Record<string, unknown>, value);
    return false;
  });
}

function matchesAny(matchers: unknown[], value: unknown, present: boolean): boolean {
  const values = Array.isArray(value) ? value : [value];
  return matchers.some((m) => {
    if (m && typeof m === 'object' && !Array.isArray(m)) {
      const op = m as Record<string, unknown>;
      if ('exists' in op) return op.exists === (present && value !== undefined);
      if (!present) return false;
      if ('prefix' in op)
        return values.some((v) => typeof v === 'string' && typeof op.prefix === 'string' && v.startsWith(op.prefix));
      if ('suffix' in op)
        return values.some((v) => typeof v === 'string' && typeof op.suffix === 'string' && v.endsWith(op.suffix));
      if ('equals-ignore-case' in op) {
        return values.some(
          (v) =>
            typeof v === 'string' &&
            typeof op['equals-ignore-case'] === 'string' &&
            v.toLowerCase() === op['equals-ignore-case'].toLowerCase(),
        );
      }
      if ('anything-but' in op) {
        const but = op['anything-but'];
        if (but && typeof but === 'object' && !Array.isArray(but) && 'prefix' in but) {
          const p = (but as { prefix: unknown }).prefix;
          return values.every((v) => !(typeof v === 'string' && typeof p === 'string' && v.startsWith(p)));
        }
        const excluded = Array.isArray(but) ? but : [but];
        return values.every((v) => !excluded.includes(v));
      }
      throw new Error(`unsupported event pattern operator: ${JSON.stringify(op)}`);
    }
    return present && values.some((v) => v === m);
  });
}

/** Lambda retries a failed asynchronous invocation after about a minute, then about two. */
const ASYNC_RETRY_DELAYS_MS = [60_000, 120_000];

export async function startLocalRuntime(options: LocalRuntimeOptions): Promise<LocalRuntime> {
  const policy = options.policy;
  const twin = options.twin ?? (await startTwin({ ...options.twinOptions, clock: options.clock ?? new ManualClock() }));
  const ownsTwin = !options.twin;
  const clock = twin.clock;
  const stage = options.stage ?? 'local';
  const clientsWith = (accessKeyId: string, maxAttempts?: number) =>
    createClients({
      endpoint: twin.endpoint,
      s3Endpoint: twin.s3Endpoint,
      credentials: { accessKeyId, secretAccessKey: 'local' },
      ...(maxAttempts ? { maxAttempts } : {}),
    });
  const clients = clientsWith(OWN_ACCESS_KEY);
  // Each function's calls are signed with its role's key, one role per function and deployment region (every source
  // and DR region: a DR region's stack holds its copy-completion rule; only the home region's the scheduled work).
  const homeRegion = options.homeRegion ?? policy.regions.sources[0] ?? 'us-east-1';
  const roleClients = new Map<string, Clients>();
  const deployed = new Set([homeRegion, ...policy.regions.sources, ...policy.regions.dr.map((d) => d.region)]);
  for (const region of deployed) {
    for (const role of functionRoles({ policy, stage, region, accountId: twin.accountId, home: homeRegion })) {
      const accessKeyId = roleAccessKeyId(role.functionKey, region);
      twin.iam.attach({
        accessKeyId,
        arn: `arn:aws:sts::${twin.accountId}:assumed-role/${role.roleName}/${role.functionKey}`,
        statements: role.statements,
      });
      roleClients.set(`${role.functionKey}@${region}`, clientsWith(accessKeyId));
    }
  }
  // The policy's DR accounts, deployed from deploy/dr-account.yml (roles only: keys are the test's or seed's).
  for (const accountId of drAccounts(policy)) deployDrAccount(twin, { accountId, region: homeRegion });
  // What serverless.yml puts on each region's default bus (a DR region's policy for its DR accounts' copy events).
  for (const region of deployed)
    for (const statement of templateBusPolicies({ policy, stage, region, accountId: twin.accountId, home: homeRegion }))
      twin.events.putPermission(defaultBusArn(region, twin.accountId), statement);
  const clientsFor = (fn: FunctionKey, region = homeRegion): Clients => {
    const found = roleClients.get(`${fn}@${region}`);
    if (!found) throw new Error(`serverless.yml gives ${fn} no role deployed in ${region}`);
    return found;
  };
  const metrics: RecordedMetric[] = [];
  const sink: MetricSink = {
    addMetric: (name, unit, value) => metrics.push({ name, unit, value, at: clock.now() }),
    publishStoredMetrics: () => undefined,
  };
  const silent: LogSink = { info: () => undefined, warn: () => undefined };
  // Organization reach: each function's member clients come from its own role's session (STS AssumeRole).
  const memberClientsOf = new Map<Clients, ClientsFor>();
  const withMembers = (home: Clients, region: string): ClientsFor => {
    let found = memberClientsOf.get(home);
    if (!found) {
      found = memberClients({
        home,
        homeAccountId: twin.accountId,
        region,
        roleArnOf: (account) => memberRoleArn(policy, account),
        externalId: policy.organization?.externalId,
        now: () => clock.now(),
      });
      memberClientsOf.set(home, found);
    }
    return found;
  };
  const memberTwins = options.memberTwins ?? new Map<string, Twin>();
  const members = reachesMembers(policy)
    ? new Set(policy.organization ? memberTwins.keys() : (policy.accounts ?? []))
    : undefined;
  const deps: ReplicationDeps = {
    clients: clientsFor('onImageEvent'),
    policy,
    now: () => new Date(clock.now()),
    metrics: sink,
    log: options.log ?? silent,
  };

  const stepFunctions = new LocalStepFunctions({ accountId: twin.accountId, clock });
  twin.register('states', stepFunctions.handler);
  const vt = stepFunctions.virtualTime;
  // Copies finish at their own twin time even while every branch sleeps until a wait's timeout.
  vt?.addAlarm(() => twin.nextDue());
  for (const member of memberTwins.values()) vt?.addAlarm(() => member.nextDue());

  const machineName = `ami-dr-${stage}-replicate`;
  // The copy-waits table, deployed with the stack in every source region (serverless.yml: CopyWaitsTable).
  const copyWaitsTable = `ami-dr-${stage}-copy-waits`;
  for (const region of policy.regions.sources) twin.dynamodb.createTable(region, copyWaitsTable, 'copy');
  const waitDeps = { ...deps, table: copyWaitsTable };
  // The copy-slot queue, beside it (serverless.yml: CopyQueueTable).
  const copyQueueTable = `ami-dr-${stage}-copy-queue`;
  for (const region of policy.regions.sources) twin.dynamodb.createTable(region, copyQueueTable, 'queue', 'order');
  const asl = readFileSync(ASL_FILE, 'utf8');
  const tasksIn = (region: string): Record<string, TaskBinding> => {
    const bind =
      (fn: (input: unknown, deps: ReplicationDeps) => Promise<unknown>, key: FunctionKey): TaskBinding =>
      (input) =>
        fn(input, {
          ...deps,
          ...(key === 'finalizeCopy' || key === 'cleanupCopy' ? { queueTable: copyQueueTable } : {}),
          clients: clientsFor(key, region),
          clientsFor: withMembers(clientsFor(key, region), region),
        });
    const bound: Record<string, TaskBinding> = {
      CheckSource: bind(checkSource, 'checkSource'),
      StartCopy: bind(startCopy, 'startCopy'),
      WaitForCopy: (input) =>
        awaitCopy(input, {
          ...waitDeps,
          clients: clientsFor('awaitCopy', region),
          clientsFor: withMembers(clientsFor('awaitCopy', region), region),
        }),
      WaitForSlot: (input) =>
        awaitCopySlot(input, { ...deps, queueTable: copyQueueTable, clients: clientsFor('awaitSlot', region) }),
      SlotWaitEnded: (input) =>
        leaveCopySlotQueue(input, { ...deps, queueTable: copyQueueTable, clients: clientsFor('awaitSlot', region) }),
      CheckCopy: bind(checkCopy, 'checkCopy'),
      FinalizeCopy: bind(finalizeCopy, 'finalizeCopy'),
      CleanupCopy: bind(cleanupCopy, 'cleanupCopy'),
      Summarize: bind(summarize, 'summarize'),
      SummarizeMapFailure: bind(summarize, 'summarize'),
    };
    const wrap = options.wrapTask;
    return wrap ? Object.fromEntries(Object.entries(bound).map(([state, task]) => [state, wrap(state, task)])) : bound;
  };
  // The tasks after the Wait states: their input carries the due time the Wait waited for.
  const timing = {
    CheckSource: { dueAt: (input: unknown) => (input as { check?: SourceCheck }).check?.nextCheckAt },
    CheckCopy: { dueAt: (input: unknown) => (input as { copy?: CopyStatus }).copy?.nextCheckAt },
    WaitForCopy: {
      timeoutSeconds: (input: unknown) => (input as { Payload?: { copy?: CopyStatus } }).Payload?.copy?.waitSeconds,
    },
  };
  const arns = new Map<string, string>();
  for (const region of policy.regions.sources) {
    const definition = JSON.parse(
      asl.replace(
        /\$\{(\w+)FunctionArn\}/g,
        (_, fn: string) =>
          `arn:aws:lambda:${region}:${twin.accountId}:function:ami-dr-${stage}-${fn.charAt(0).toLowerCase()}${fn.slice(1)}`,
      ),
    ) as StateMachineDefinition;
    arns.set(region, stepFunctions.createStateMachine(region, machineName, definition, tasksIn(region), timing));
  }
  const stateMachineArn = (region: string) => {
    const arn = arns.get(region);
    if (!arn) throw new Error(`${region} is not a source region of the policy`);
    return arn;
  };

  // A state machine task's clients try each call twice and leave throttling to the pacer (lib/aws/clients.ts).
  const taskClients = new Map<string, Clients>();
  const taskClientsFor = (fn: FunctionKey, region: string): Clients => {
    clientsFor(fn, region);
    const key = `${fn}@${region}`;
    if (!taskClients.has(key)) taskClients.set(key, clientsWith(roleAccessKeyId(fn, region), TASK_MAX_ATTEMPTS));
    return taskClients.get(key)!;
  };
  // The home stack's runs bucket (needs the twin's S3: without it the scheduled runs cannot start their units), and
  // the scheduled state machines' roles: their Distributed Maps read and write the runs bucket, start their child
  // executions and invoke the tasks under them, held to their policies as on AWS.
  const runsBucket = localRunsBucket(`ami-dr-${stage}`, twin.accountId);
  if (twin.s3Endpoint) await ensureBucket(s3Client(clients, homeRegion), runsBucket);
  const machineRoles = new Map(
    templateRoles({ policy, stage, region: homeRegion, accountId: twin.accountId, home: homeRegion }).map((r) => [
      r.logicalId,
      r,
    ]),
  );
  const machineStorage = (job: ScheduledJob): MapRunStorage => {
    const role = machineRoles.get(`${job[0]!.toUpperCase()}${job.slice(1)}StateMachineRole`);
    if (!role) throw new Error(`serverless.yml has no role for the ${job} state machine`);
    const session = `${job}StateMachine`;
    const accessKeyId = roleAccessKeyId(session, homeRegion);
    twin.iam.attach({
      accessKeyId,
      arn: `arn:aws:sts::${twin.accountId}:assumed-role/${role.roleName}/${session}`,
      statements: role.statements,
    });
    const authorize = (requests: { action: string; resource: string }[]) => {
      const denied = twin.iam.denied(accessKeyId, requests);
      return denied ? denialMessage(denied.arn, denied.request) : undefined;
    };
    return { ...mapRunStorage(s3Client(clientsWith(accessKeyId), homeRegion)), authorize };
  };
  const scheduled = scheduledMachines({
    policy,
    stage,
    twin,
    stepFunctions,
    homeRegion,
    runsBucket,
    machineStorage,
    clientsFor: taskClientsFor,
    membersFor: (home) => (reachesMembers(policy) ? withMembers(home, homeRegion) : undefined),
    options,
    sink,
  });

  const { rules, maximumRetryAttempts } = readRules();
  const deliveries: EventDelivery[] = [];
  const dlq: DeadLetter[] = [];
  const inFlight = new Set<Promise<void>>();

  const invoke = async (event: unknown, region: string): Promise<void> => {
    const delivery: EventDelivery = { event };
    deliveries.push(delivery);
    const eventDeps = {
      ...deps,
      clients: clientsFor('onImageEvent', region),
      accountId: twin.accountId,
      stateMachineArn: stateMachineArn(region),
      // ami-dr's roles on the twin: ami-dr-<stage>-<region>-<function> sessions, and `AMIDR…` keys (identity.ts).
      roleArnPrefix: `arn:aws:sts::${twin.accountId}:assumed-role/ami-dr`,
      clientsFor: withMembers(clientsFor('onImageEvent', region), region),
      ...(members ? { isMember: (a: string) => members.has(a), memberRoleName: policy.organization?.memberRole } : {}),
    };
    await invokeAsync(event, delivery, maximumRetryAttempts, () => handleImageEvent(event, eventDeps));
  };

  /** Lambda's asynchronous invocation: the handler, retried after its failures, then the dead-letter queue. */
  const invokeAsync = async <T>(
    event: unknown,
    delivery: { outcome?: T; error?: string },
    maxRetries: number,
    work: () => Promise<T>,
  ): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      try {
        delivery.outcome = vt ? await vt.run(work) : await work();
        delete delivery.error;
        return;
      } catch (error) {
        const e = error as Error;
        delivery.error = e.name;
        const delay = ASYNC_RETRY_DELAYS_MS[attempt - 1];
        if (attempt > maxRetries || delay === undefined) {
          dlq.push({ event, error: e.name, message: e.message, attempts: attempt });
          return;
        }
        if (vt) await vt.sleep(delay);
        else await new Promise((r) => setTimeout(r, Math.min(delay, 1000)));
      }
    }
  };

  // In each DR region, the onCopyState rule: a copy done wakes the replication waiting for it in its source region.
  const copyRules = readRules(SERVERLESS_FILE, 'onCopyState');
  const copyDeliveries: CopyEventDelivery[] = [];
  const drRegions = new Set(policy.regions.dr.map((d) => d.region));
  const deliverCopyEvent = (event: unknown): void => {
    const region = (event as { region?: unknown } | null)?.region;
    if (typeof region !== 'string' || !drRegions.has(region)) return;
    if (!copyRules.rules.some((r) => matchesPattern(r.pattern, event))) return;
    if (options.loseCopyEvent?.(event as TwinEvent)) return;
    const delivery: CopyEventDelivery = { event };
    copyDeliveries.push(delivery);
    const copyDeps = { ...waitDeps, clients: clientsFor('onCopyState', region), accountId: twin.accountId };
    const p = invokeAsync(event, delivery, copyRules.maximumRetryAttempts, () =>
      handleCopyStateEvent(event, copyDeps),
    ).finally(() => inFlight.delete(p));
    inFlight.add(p);
  };

  const deliver = (event: unknown): void => {
    deliverCopyEvent(event);
    const region = (event as { region?: unknown } | null)?.region;
    if (typeof region !== 'string' || !policy.regions.sources.includes(region)) return; // no rule deployed there
    if (!rules.some((r) => matchesPattern(r.pattern, event))) return;
    const p = invoke(event, region).finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  // ami-dr's rules see the events on its own account's buses; a DR account's reach them only through its rule.
  const unsubscribers = [
    twin.events.subscribe((event: TwinEvent) => {
      if (event.account === twin.accountId) deliver(event);
    }),
  ];
  // Each DR account's stack in each of its regions (deploy/dr-account.yml) forwards its copies' state changes to
  // ami-dr's bus there: delivered if the rule's role and the bus policy let EventBridge put them, else refused.
  for (const d of policy.regions.dr) {
    if (!d.account) continue;
    const forwarding = drAccountForwardingRules(twin.accountId, { accountId: d.account, region: d.region });
    unsubscribers.push(
      twin.events.subscribe((event: TwinEvent) => {
        if (event.account !== d.account || event.region !== d.region) return;
        for (const rule of forwarding) {
          if (!matchesPattern(rule.pattern, event)) continue;
          for (const target of rule.targets) {
            const put = twin.events.putEventsFrom(event, target, twin.iam);
            if (put.accepted && target.busArn === defaultBusArn(d.region, twin.accountId)) deliver(event);
          }
        }
      }),
    );
  }
  // A member's rule (deploy/member-account.yml) puts its image events on this account's bus, in the same region.
  const forwarding = forwardingPatterns();
  for (const member of memberTwins.values())
    unsubscribers.push(
      member.events.subscribe((event: TwinEvent) => {
        if (forwarding.some((pattern) => matchesPattern(pattern, event))) deliver(event);
      }),
    );
  const settleAll = async () => {
    await twin.settle();
    for (const member of memberTwins.values()) await member.settle();
  };

  const waitForIdle = async () => {
    for (;;) {
      await settleAll();
      if (inFlight.size === 0 && stepFunctions.executions().every((e) => e.status !== 'RUNNING')) {
        await settleAll();
        if (inFlight.size === 0 && stepFunctions.executions().every((e) => e.status !== 'RUNNING')) return;
      }
      await Promise.all([...inFlight]);
      await stepFunctions.idle();
    }
  };

  const drAccountClients = async (accountId: string, roleName: string): Promise<Clients> => {
    const admin = `AMIDRADMIN${accountId}`;
    twin.iam.identities[admin] = `arn:aws:iam::${accountId}:user/admin`;
    return assumedClients(clientsWith(admin), `arn:aws:iam::${accountId}:role/${roleName}`, homeRegion);
  };
  return {
    twin,
    clients,
    homeRegion,
    runsBucket,
    drAccountClients,
    clientsFor,
    policy,
    stepFunctions,
    stateMachineArn,
    executions: () => stepFunctions.executions(),
    deliveries,
    copyDeliveries,
    copyWaitsTable,
    copyQueueTable,
    dlq,
    metrics,
    scheduledStateMachineArn: (job) => scheduled[job],
    startScheduled: (job, start = {}) =>
      startScheduledRun(clientsFor('startScheduled', homeRegion), scheduled[job], {
        job,
        time: new Date(start.time ?? clock.now()).toISOString(),
        periodMinutes: SCHEDULE_MINUTES[job],
        ...(start.dryRun !== undefined ? { dryRun: start.dryRun } : {}),
      }),
    putEvent: async (event) => {
      deliver(event);
      await Promise.resolve();
    },
    waitForIdle,
    stop: async () => {
      for (const unsubscribe of unsubscribers) unsubscribe();
      stepFunctions.stopAll();
      await Promise.allSettled([...inFlight]);
      if (ownsTwin) await twin.stop();
    },
  };
}

/** A region's default event bus in an account. */
const defaultBusArn = (region: string, accountId: string): string =>
  `arn:aws:events:${region}:${accountId}:event-bus/default`;

/** The schedules' periods, as serverless.yml's startScheduled events declare them. */
const SCHEDULE_MINUTES: Record<ScheduledJob, number> = { retention: 60, readiness: 30 };
/** The retention and readiness functions' timeouts in serverless.yml, minus their handlers' 30 s margin. */
const TASK_BUDGET_MS: Record<ScheduledJob, number> = { retention: 870_000, readiness: 270_000 };

interface ScheduledMachinesOptions {
  policy: Readonly<Policy>;
  stage: string;
  twin: Twin;
  stepFunctions: LocalStepFunctions;
  homeRegion: string;
  runsBucket: string;
  /** The S3 and checks of a scheduled state machine's Distributed Map, as its role. */
  machineStorage: (job: ScheduledJob) => MapRunStorage;
  clientsFor: (fn: FunctionKey, region: string) => Clients;
  /** A function's member clients (its role's sessions in the members), when the policy reaches members. */
  membersFor: (home: Clients) => ClientsFor | undefined;
  options: LocalRuntimeOptions;
  sink: MetricSink;
}

/**
 * The retention and readiness state machines (statemachines/<job>.asl.json) in the home region, each task bound to
 * the lib function its Lambda calls, under the function's role; pacing waits pass on the virtual clock without
 * holding it, so units run side by side in twin time.
 */
function scheduledMachines(o: ScheduledMachinesOptions): Record<ScheduledJob, string> {
  const { twin, stepFunctions, homeRegion: home } = o;
  const vt = stepFunctions.virtualTime;
  const clock = twin.clock;
  const deps = (fn: ScheduledJob): ScheduledDeps => ({
    policy: o.policy,
    clientsFor:
      o.options.unitClients?.(fn) ??
      reachClients(o.clientsFor(fn, home), twin.accountId, o.membersFor(o.clientsFor(fn, home))),
    accountId: twin.accountId,
    homeRegion: home,
    runsBucket: o.runsBucket,
    clock: () => clock.now(),
    ...(vt ? { sleep: (ms: number) => vt.pause(ms) } : {}),
  });
  const record = (out: unknown): unknown => {
    const metrics = (out as { metrics?: { name: string; unit: string; value: number }[] }).metrics ?? [];
    for (const m of metrics) o.sink.addMetric(m.name as never, m.unit as never, m.value);
    return out;
  };
  const budget = (job: ScheduledJob) => clock.now() + (o.options.taskBudgetMs ?? TASK_BUDGET_MS[job]);
  const run: Record<ScheduledJob, TaskBinding> = {
    retention: async (input) =>
      record(await retentionTask(deps('retention'), parseRetentionTask(input), budget('retention'))),
    readiness: async (input) =>
      record(
        await readinessTask(
          {
            ...deps('readiness'),
            stateMachineArnFor: (r) => `arn:aws:states:${r}:${twin.accountId}:stateMachine:ami-dr-${o.stage}-replicate`,
          },
          parseReadinessTask(input),
        ),
      ),
  };
  const arns = {} as Record<ScheduledJob, string>;
  for (const job of ['retention', 'readiness'] as const) {
    const text = readFileSync(join(packageRoot(), 'statemachines', `${job}.asl.json`), 'utf8');
    const functionArn = `arn:aws:lambda:${home}:${twin.accountId}:function:ami-dr-${o.stage}-${job}`;
    // serverless.yml's DefinitionSubstitutions.
    const definition = JSON.parse(
      text.replace(/\$\{(\w+)FunctionArn\}/g, functionArn).replaceAll('${RunsBucket}', o.runsBucket),
    ) as StateMachineDefinition;
    const storage = o.machineStorage(job);
    // Step Functions invokes the task's function as the state machine's role.
    const invoked =
      (task: TaskBinding): TaskBinding =>
      async (input) => {
        const refused = storage.authorize?.([{ action: 'lambda:InvokeFunction', resource: functionArn }]);
        if (refused) throw Object.assign(new Error(refused), { name: 'Lambda.AWSLambdaException' });
        return task(input);
      };
    const wrap = o.options.wrapTask;
    const tasks = Object.fromEntries(
      ['Plan', 'RunUnit', 'Aggregate'].map((state) => [
        state,
        invoked(wrap ? wrap(`${job}.${state}`, run[job]) : run[job]),
      ]),
    );
    arns[job] = stepFunctions.createStateMachine(home, `ami-dr-${o.stage}-${job}`, definition, tasks, {}, { storage });
  }
  return arns;
}
