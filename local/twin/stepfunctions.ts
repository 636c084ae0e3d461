import { randomUUID } from 'node:crypto';
import { StateMachine, type RunOptions, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { isManualClock, type Clock, type ManualClock } from './clock.ts';
import {
  jsonError,
  jsonResponse,
  TwinServiceError,
  type ServiceHandler,
  type TwinRequest,
  type TwinResponse,
} from './http.ts';

/**
 * Step Functions on the twin: the JSON 1.0 API (StartExecution, DescribeExecution, ListExecutions, StopExecution,
 * DescribeStateMachine, SendTaskSuccess, SendTaskFailure) over state machines whose ASL is executed by aws-local-stepfunctions, with each Task bound
 * to a local function (the same lib functions the Lambdas call).
 *
 * Distributed Map states (`ProcessorConfig.Mode: DISTRIBUTED`), which aws-local-stepfunctions does not know, run here
 * as AWS documents them: the state is handed to the library as a Task bound to a map run (`runMap`), whose items come
 * from its ItemReader (an S3 object, through the machine's `MapRunStorage`) or ItemsPath, each item (after
 * ItemSelector) a child execution of the ItemProcessor with its own payload checks, at most MaxConcurrency at once,
 * the tolerated failures honoured, and the results written by its ResultWriter (manifest.json, SUCCEEDED_n.json,
 * FAILED_n.json). See local/README.md for the pages followed.
 *
 * Time. With a ManualClock the twin runs in virtual time: Wait states and Retry back-offs do not sleep; instead the
 * task after a Wait (or a retried task) asks `VirtualTime` to be woken at its due time, and VirtualTime moves the
 * clock to the earliest due time once every running branch is asleep or done — a discrete-event simulation. That
 * keeps concurrent branches and executions overlapping as they would on AWS (ten copies waiting 30 s cost 30 s of
 * twin time, not 300), keeps the twin's copies, quotas and events in step with the state machine, and makes an
 * hour-long copy finish in milliseconds. With a real clock, waits and back-offs are real.
 */

// aws-local-stepfunctions uses Promise.withResolvers (Node 22+).
const P = Promise as unknown as {
  withResolvers?: <T>() => { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void };
};
P.withResolvers ??= <T>() => {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

// ---- virtual time ---------------------------------------------------------------------------------------------------

interface Sleeper {
  at: number;
  wake: () => void;
}

/**
 * Discrete-event time over a ManualClock. Work in progress is counted (`run`); sleepers wait for a clock time.
 * When nothing has run for `quietMs` of real time and someone sleeps, the clock jumps to the earliest wake-up.
 * The quiet period covers the state machine's own steps between tasks (Choice, Pass, Map bookkeeping), which
 * are not counted work; if it is too short on a loaded machine a branch merely acts a little later in twin time.
 */
export class VirtualTime {
  private readonly sleepers: Sleeper[] = [];
  private active = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** How many times the clock was moved forward. */
  steps = 0;
  /** Other things due at a clock time (the twin's copies finishing): the clock stops there too. */
  private readonly alarms: (() => number | undefined)[] = [];

  constructor(
    readonly clock: ManualClock,
    private readonly quietMs = 5,
  ) {}

  /** Resolves once the clock has reached `at` (immediately if it has). */
  sleepUntil(at: number): Promise<void> {
    if (at <= this.clock.now() || this.stopped) return Promise.resolve();
    return new Promise<void>((wake) => {
      this.sleepers.push({ at, wake });
      this.arm();
    });
  }

  sleep(ms: number): Promise<void> {
    return this.sleepUntil(this.clock.now() + Math.max(0, ms));
  }

  /**
   * A sleep that can be called off (a task's timeout once its token came): a cancelled sleeper no longer holds the
   * clock's next stop, so time does not jump to a timeout nobody waits for.
   */
  cancellableSleep(ms: number, fire: () => void): () => void {
    const at = this.clock.now() + Math.max(0, ms);
    if (this.stopped) return () => undefined;
    if (at <= this.clock.now()) {
      fire();
      return () => undefined;
    }
    const sleeper: Sleeper = { at, wake: fire };
    this.sleepers.push(sleeper);
    this.arm();
    return () => {
      const i = this.sleepers.indexOf(sleeper);
      if (i >= 0) this.sleepers.splice(i, 1);
      this.arm();
    };
  }

  /** Runs `work` counted as activity: the clock does not jump while it runs. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    this.active++;
    this.disarm();
    try {
      return await work();
    } finally {
      this.active--;
      this.arm();
    }
  }

  /**
   * A wait inside `run` (a task pacing its calls): the task stops counting as activity until the clock reaches
   * `now + ms`, so parallel tasks' waits overlap in twin time as they would in real time.
   */
  async pause(ms: number): Promise<void> {
    this.active--;
    this.arm();
    try {
      await this.sleep(ms);
    } finally {
      this.active++;
      // Other workers of the same task may still be paused: the clock moves on for them once nothing is active.
      this.arm();
    }
  }

  /**
   * Makes the clock stop at `next()`'s time on its way to a sleeper's: a branch waiting for a copy's event sleeps
   * until its timeout, and the copy's completion (and so its event) must happen at its own time, not then.
   */
  addAlarm(next: () => number | undefined): void {
    this.alarms.push(next);
  }

  get sleeping(): number {
    return this.sleepers.length;
  }

  /** Wakes every sleeper without moving the clock (shutdown). */
  stop(): void {
    this.stopped = true;
    this.disarm();
    for (const s of this.sleepers.splice(0)) s.wake();
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    this.disarm();
    if (this.active > 0 || this.sleepers.length === 0 || this.stopped) return;
    this.timer = setTimeout(() => this.advance(), this.quietMs);
  }

  private advance(): void {
    this.timer = undefined;
    if (this.active > 0 || this.sleepers.length === 0) return;
    const now0 = this.clock.now();
    const alarms = this.alarms.map((a) => a()).filter((t): t is number => t !== undefined && t > now0);
    const next = Math.min(...this.sleepers.map((s) => s.at), ...alarms);
    if (next > this.clock.now()) {
      this.clock.advanceTo(next);
      this.steps++;
    }
    const now = this.clock.now();
    const due = this.sleepers.filter((s) => s.at <= now);
    for (const s of due) this.sleepers.splice(this.sleepers.indexOf(s), 1);
    for (const s of due) s.wake();
    this.arm();
  }
}

// ---- state machines and executions ----------------------------------------------------------------------------------

export type TaskBinding = (input: unknown) => Promise<unknown>;

/**
 * The S3 a state machine's Distributed Map reads its items from and writes its results to, as the state machine's
 * role (a refusal is an error like S3's), and the role's other checks.
 */
export interface MapRunStorage {
  /** The object's body; throws (NoSuchKey, AccessDenied, ...) as S3 would. */
  getObject(bucket: string, key: string): Promise<string>;
  putObject(bucket: string, key: string, body: string): Promise<void>;
  /** The refusal message when the state machine's role may not make these requests, else undefined. */
  authorize?(requests: { action: string; resource: string }[]): string | undefined;
}

export interface StateMachineOptions {
  storage?: MapRunStorage;
}

/** A Distributed Map state's run: its child executions, one per item, in item order. */
export interface MapRun {
  mapRunArn: string;
  state: string;
  maxConcurrency: number;
  /** The most children that ran at once. */
  peakConcurrency: number;
  children: LocalExecution[];
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'ABORTED';
  /** Where the ResultWriter wrote the manifest. */
  resultWriterDetails?: { Bucket: string; Key: string };
}

export interface TaskTiming {
  /** For a task that follows a Wait: when its input says it is due (ISO time or epoch ms). */
  dueAt?: (input: unknown) => string | number | undefined;
  /**
   * For a `.waitForTaskToken` task: its timeout in seconds, from its effective input (its TimeoutSecondsPath
   * points into the state's input, which the local handler does not see).
   */
  timeoutSeconds?: (input: unknown) => number | undefined;
}

/** What `$$.Task.Token` gives locally; each wait replaces it in the task's input with a token of its own. */
export const LOCAL_TOKEN_PLACEHOLDER = 'local-task-token-placeholder';

interface TokenWait {
  executionArn: string;
  settled: boolean;
  resolve: (output: unknown) => void;
  reject: (error: Error) => void;
}

/** A task's failure as the state machine sees it: the error name is what Retry and Catch match. */
/**
 * Step Functions' payload quota: a state's input (after Parameters), its output, and a task's result are at most
 * 256 KiB (UTF-8). Beyond it the execution fails with States.DataLimitExceeded, a terminal error that `States.ALL`
 * does not catch (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html).
 */
export const STATE_DATA_LIMIT_BYTES = 256 * 1024;
const dataBytes = (value: unknown): number => (value === undefined ? 0 : Buffer.byteLength(JSON.stringify(value)));

class TaskError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

function replaceDeep(value: unknown, from: string, to: string): unknown {
  if (value === from) return to;
  if (Array.isArray(value)) return value.map((v) => replaceDeep(v, from, to));
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replaceDeep(v, from, to)]));
  return value;
}

export interface LocalStateMachine {
  arn: string;
  name: string;
  region: string;
  definition: StateMachineDefinition;
  tasks: Record<string, TaskBinding>;
  timing: Record<string, TaskTiming>;
  creationDate: number;
  storage?: MapRunStorage;
}

export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';

export interface StateTransition {
  state: string;
  /** The Map iteration this state ran in (the index of the item), if any. */
  iteration?: number;
  /** Twin time, epoch ms. */
  at: number;
}

export interface LocalExecution {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  region: string;
  input: string;
  status: ExecutionStatus;
  /** Twin time, epoch ms. */
  startDate: number;
  stopDate?: number;
  output?: string;
  error?: string;
  cause?: string;
  /** Every state entered, in order (Step Functions bills these as state transitions). */
  transitions: StateTransition[];
  /** The largest data a state handled (a task's input or result, a state's output): what the payload quota measures. */
  largestData?: { state: string; bytes: number };
  /** The same, per state name (a Map's inner states over all its iterations). */
  dataBytes: Record<string, number>;
  /** Resolves when the execution has ended, however it ended. */
  done: Promise<void>;
  abort?: () => void;
  /** Its Distributed Map states' runs (their child executions are not listed with the state machine's). */
  mapRuns?: MapRun[];
}

export interface LocalStepFunctionsOptions {
  accountId: string;
  clock: Clock;
  /** Virtual time over the clock (made for a ManualClock when not given). */
  virtualTime?: VirtualTime;
}

const NAME = /^[^\s<>{}[\]?*"#%\\^|~`$&,;:/\u0000-\u001f\u007f-\u009f]{1,80}$/;

/** ListExecutions' item; DescribeExecution answers the same and more. Dates in epoch seconds, as the API has them. */
function executionListItem(e: LocalExecution) {
  return {
    executionArn: e.executionArn,
    stateMachineArn: e.stateMachineArn,
    name: e.name,
    status: e.status,
    startDate: e.startDate / 1000,
    ...(e.stopDate !== undefined ? { stopDate: e.stopDate / 1000 } : {}),
  };
}

export class LocalStepFunctions {
  readonly virtualTime: VirtualTime | undefined;
  private readonly machines = new Map<string, LocalStateMachine>();
  private readonly executionsByArn = new Map<string, LocalExecution>();
  private readonly clock: Clock;
  private readonly accountId: string;
  private readonly tokens = new Map<string, TokenWait>();

  constructor(options: LocalStepFunctionsOptions) {
    this.clock = options.clock;
    this.accountId = options.accountId;
    this.virtualTime =
      options.virtualTime ?? (isManualClock(options.clock) ? new VirtualTime(options.clock) : undefined);
  }

  /** Registers a state machine; each Task state of the definition (Map iterations included) needs a binding. */
  createStateMachine(
    region: string,
    name: string,
    definition: StateMachineDefinition,
    tasks: Record<string, TaskBinding>,
    timing: Record<string, TaskTiming> = {},
    options: StateMachineOptions = {},
  ): string {
    const missing = taskStates(definition).filter((s) => !tasks[s]);
    if (missing.length) throw new Error(`no local binding for task state(s): ${missing.join(', ')}`);
    const arn = `arn:aws:states:${region}:${this.accountId}:stateMachine:${name}`;
    const storage = options.storage ? { storage: options.storage } : {};
    this.machines.set(arn, {
      arn,
      name,
      region,
      definition,
      tasks,
      timing,
      creationDate: this.clock.now(),
      ...storage,
    });
    return arn;
  }

  executions(stateMachineArn?: string): LocalExecution[] {
    return [...this.executionsByArn.values()].filter((e) => !stateMachineArn || e.stateMachineArn === stateMachineArn);
  }

  execution(executionArn: string): LocalExecution | undefined {
    return this.executionsByArn.get(executionArn);
  }

  /** Resolves when no execution is running (including ones started meanwhile). */
  async idle(): Promise<void> {
    for (;;) {
      const running = this.executions().filter((e) => e.status === 'RUNNING');
      if (running.length === 0) return;
      await Promise.all(running.map((e) => e.done));
    }
  }

  /** Aborts every running execution, map runs' children included (for shutdown). */
  stopAll(): void {
    for (const e of this.executions()) if (e.status === 'RUNNING') e.abort?.();
    this.virtualTime?.stop();
  }

  /** The JSON 1.0 API, for `twin.register('states', ...)`. */
  readonly handler: ServiceHandler = (request: TwinRequest): TwinResponse => {
    const actions: Record<string, (r: TwinRequest) => unknown> = {
      StartExecution: (r) => this.apiStart(r),
      DescribeExecution: (r) => this.apiDescribe(r),
      ListExecutions: (r) => this.apiList(r),
      StopExecution: (r) => this.apiStop(r),
      DescribeStateMachine: (r) => this.apiDescribeStateMachine(r),
      SendTaskSuccess: (r) => this.apiSendTask(r, true),
      SendTaskFailure: (r) => this.apiSendTask(r, false),
    };
    const action = Object.hasOwn(actions, request.action) ? actions[request.action] : undefined;
    if (!action)
      return jsonError(
        400,
        'UnknownOperationException',
        `Operation ${request.action} is not supported by the local Step Functions.`,
      );
    try {
      return jsonResponse(action(request), 'application/x-amz-json-1.0');
    } catch (error) {
      if (error instanceof TwinServiceError)
        return { ...jsonError(error.status, error.code, error.message), contentType: 'application/x-amz-json-1.0' };
      throw error;
    }
  };

  // ---- API actions ----------------------------------------------------------------------------------------------------

  /** Same name + same input while running ⇒ the original execution; closed, or another input ⇒ ExecutionAlreadyExists. */
  startExecution(stateMachineArn: string, name: string = randomUUID(), input = '{}'): LocalExecution {
    const machine = this.machines.get(stateMachineArn);
    if (!machine)
      throw new TwinServiceError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${stateMachineArn}'`);
    if (!NAME.test(name)) throw new TwinServiceError('InvalidName', `Invalid Name: '${name}'`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(input);
    } catch {
      throw new TwinServiceError('InvalidExecutionInput', 'Invalid State Machine Execution Input: not JSON');
    }
    if (Buffer.byteLength(input) > 256 * 1024)
      throw new TwinServiceError('InvalidExecutionInput', 'Execution input exceeds 256 KB');
    const executionArn = `arn:aws:states:${machine.region}:${this.accountId}:execution:${machine.name}:${name}`;
    const existing = this.executionsByArn.get(executionArn);
    if (existing) {
      if (existing.status === 'RUNNING' && existing.input === input) return existing;
      throw new TwinServiceError('ExecutionAlreadyExists', `Execution Already Exists: '${executionArn}'`);
    }
    const execution: LocalExecution = {
      executionArn,
      stateMachineArn,
      name,
      region: machine.region,
      input,
      status: 'RUNNING',
      startDate: this.clock.now(),
      transitions: [],
      dataBytes: {},
      done: Promise.resolve(),
    };
    this.executionsByArn.set(executionArn, execution);
    execution.done = this.run(machine, execution, parsed);
    return execution;
  }

  private apiStart(r: TwinRequest) {
    const json = r.json as { stateMachineArn?: string; name?: string; input?: string };
    if (!json.stateMachineArn) throw new TwinServiceError('ValidationException', 'stateMachineArn is required');
    const e = this.startExecution(json.stateMachineArn, json.name, json.input ?? '{}');
    return { executionArn: e.executionArn, startDate: e.startDate / 1000 };
  }

  private found(executionArn: unknown): LocalExecution {
    const e = typeof executionArn === 'string' ? this.executionsByArn.get(executionArn) : undefined;
    if (!e) throw new TwinServiceError('ExecutionDoesNotExist', `Execution Does Not Exist: '${String(executionArn)}'`);
    return e;
  }

  private apiDescribe(r: TwinRequest) {
    const e = this.found(r.json.executionArn);
    return {
      ...executionListItem(e),
      input: e.input,
      ...(e.output !== undefined ? { output: e.output } : {}),
      ...(e.error !== undefined ? { error: e.error } : {}),
      ...(e.cause !== undefined ? { cause: e.cause } : {}),
    };
  }

  private apiList(r: TwinRequest) {
    const json = r.json as { stateMachineArn?: string; statusFilter?: string; maxResults?: number; nextToken?: string };
    if (!json.stateMachineArn || !this.machines.has(json.stateMachineArn)) {
      throw new TwinServiceError(
        'StateMachineDoesNotExist',
        `State Machine Does Not Exist: '${String(json.stateMachineArn)}'`,
      );
    }
    const all = this.executions(json.stateMachineArn)
      .filter((e) => !json.statusFilter || e.status === json.statusFilter)
      .sort((a, b) => b.startDate - a.startDate);
    const size = json.maxResults && json.maxResults > 0 ? Math.min(json.maxResults, 1000) : 100;
    const start = json.nextToken ? Number(Buffer.from(json.nextToken, 'base64').toString('utf8')) : 0;
    if (!Number.isInteger(start) || start < 0) throw new TwinServiceError('InvalidToken', 'Invalid Token');
    const pageItems = all.slice(start, start + size);
    return {
      executions: pageItems.map(executionListItem),
      ...(start + size < all.length ? { nextToken: Buffer.from(String(start + size)).toString('base64') } : {}),
    };
  }

  private apiStop(r: TwinRequest) {
    const e = this.found(r.json.executionArn);
    if (e.status === 'RUNNING') {
      e.status = 'ABORTED';
      e.stopDate = this.clock.now();
      e.error = typeof r.json.error === 'string' ? r.json.error : undefined;
      e.cause = typeof r.json.cause === 'string' ? r.json.cause : undefined;
      e.abort?.();
    }
    return { stopDate: (e.stopDate ?? this.clock.now()) / 1000 };
  }

  /** A token is used once: again, or after its task timed out or its execution ended, it is `TaskTimedOut`. */
  private apiSendTask(r: TwinRequest, success: boolean) {
    const token = r.json.taskToken;
    if (typeof token !== 'string' || token.length === 0 || token.length > 2048)
      throw new TwinServiceError('ValidationException', 'taskToken must be 1 to 2048 characters');
    const wait = this.tokens.get(token);
    if (!wait) throw new TwinServiceError('InvalidToken', 'Invalid Token');
    const running = this.executionsByArn.get(wait.executionArn)?.status === 'RUNNING';
    if (wait.settled || !running) throw new TwinServiceError('TaskTimedOut', 'Task Timed Out');
    wait.settled = true;
    if (success) {
      let output: unknown;
      try {
        output = JSON.parse(typeof r.json.output === 'string' ? r.json.output : '');
      } catch {
        wait.settled = false;
        throw new TwinServiceError('InvalidOutput', 'Invalid Output: not JSON');
      }
      wait.resolve(output);
    } else {
      const error = typeof r.json.error === 'string' ? r.json.error : 'States.TaskFailed';
      wait.reject(new TaskError(error, typeof r.json.cause === 'string' ? r.json.cause : ''));
    }
    return {};
  }

  /**
   * A `.waitForTaskToken` task: mints a token into the input (in place of `$$.Task.Token`), invokes the task's
   * binding with it, then waits for SendTaskSuccess/SendTaskFailure, or fails with `States.Timeout` after
   * `timeoutSeconds` (twin time).
   */
  private async waitForToken(
    execution: LocalExecution,
    bind: TaskBinding,
    input: unknown,
    timeoutSeconds: number | undefined,
  ): Promise<unknown> {
    const vt = this.virtualTime;
    const token = `${randomUUID()}.${randomUUID()}`;
    let wait!: TokenWait;
    const woken = new Promise<unknown>((resolve, reject) => {
      wait = { executionArn: execution.executionArn, settled: false, resolve, reject };
    });
    this.tokens.set(token, wait);
    const payload = (input as { Payload?: unknown }).Payload ?? input;
    try {
      const invoke = () => bind(replaceDeep(payload, LOCAL_TOKEN_PLACEHOLDER, token));
      await (vt ? vt.run(invoke) : invoke());
    } catch (error) {
      wait.settled = true;
      throw error;
    }
    if (timeoutSeconds === undefined) return woken;
    let cancel: () => void = () => undefined;
    const timeout = new Promise<never>((_, reject) => {
      const expire = () => {
        if (wait.settled) return;
        wait.settled = true;
        reject(new TaskError('States.Timeout', 'Task timed out'));
      };
      if (vt) cancel = vt.cancellableSleep(timeoutSeconds * 1000, expire);
      else {
        const timer = setTimeout(expire, timeoutSeconds * 1000);
        cancel = () => clearTimeout(timer);
      }
    });
    try {
      return await Promise.race([woken, timeout]);
    } finally {
      cancel();
    }
  }

  private apiDescribeStateMachine(r: TwinRequest) {
    const arn = r.json.stateMachineArn;
    const m = typeof arn === 'string' ? this.machines.get(arn) : undefined;
    if (!m) throw new TwinServiceError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${String(arn)}'`);
    return {
      stateMachineArn: m.arn,
      name: m.name,
      status: 'ACTIVE',
      definition: JSON.stringify(m.definition),
      roleArn: `arn:aws:iam::${this.accountId}:role/${m.name}`,
      type: 'STANDARD',
      creationDate: m.creationDate / 1000,
    };
  }

  // ---- running ----------------------------------------------------------------------------------------------------

  /** A machine's definition as the library runs it, made once (a map run's children share their processor's). */
  private readonly compiledMachines = new WeakMap<LocalStateMachine, StateMachine>();
  private compiled(machine: LocalStateMachine): StateMachine {
    let sm = this.compiledMachines.get(machine);
    if (!sm) {
      sm = new StateMachine(localDefinition(machine.definition), { validationOptions: { checkArn: false } });
      this.compiledMachines.set(machine, sm);
    }
    return sm;
  }

  /**
   * Runs an execution to its end. A map run's child passes its `parent` (and its item's index): the states it enters
   * and the data they handle are the parent's too (every state transition of a run, as AWS bills them).
   */
  private async run(
    machine: LocalStateMachine,
    execution: LocalExecution,
    input: unknown,
    parent?: { execution: LocalExecution; index: number },
  ): Promise<void> {
    const vt = this.virtualTime;
    const virtual = Boolean(vt);
    const sm = this.compiled(machine);
    const retriers = retriersByState(machine.definition);
    const attempts = new Map<string, number[]>();
    type Handlers = NonNullable<NonNullable<RunOptions['overrides']>['taskResourceLocalHandlers']>;
    const tasks: Handlers = {};
    const waiting = waitForTokenStates(machine.definition);
    /** The first state whose data exceeded the payload quota: the execution fails there, whatever catches. */
    let exceeded: string | undefined;
    let exceededOutput: string | undefined;
    const measured = parent ? [execution, parent.execution] : [execution];
    const measure = (state: string, data: unknown): number => {
      const bytes = dataBytes(data);
      for (const e of measured) {
        if (bytes > (e.largestData?.bytes ?? 0)) e.largestData = { state, bytes };
        e.dataBytes[state] = Math.max(e.dataBytes[state] ?? 0, bytes);
      }
      return bytes;
    };
    const checkQuota = (state: string, data: unknown, what: 'input' | 'result'): void => {
      if (measure(state, data) <= STATE_DATA_LIMIT_BYTES) return;
      exceeded ??=
        what === 'input'
          ? `The state/task '${state}' has an input with a size exceeding the maximum number of bytes service limit.`
          : `The state/task '${state}' returned a result with a size exceeding the maximum number of bytes service limit.`;
      execution.abort?.();
      throw new TaskError('States.DataLimitExceeded', exceeded);
    };
    const fixedTimeouts = taskTimeoutSeconds(machine.definition);
    for (const [state, bind] of Object.entries(machine.tasks)) {
      const timing = machine.timing[state];
      if (waiting.has(state)) {
        tasks[state] = (async (taskInput: unknown) => {
          checkQuota(state, taskInput, 'input');
          try {
            const timeout = timing?.timeoutSeconds?.(taskInput) ?? fixedTimeouts.get(state);
            return await this.waitForToken(execution, bind, taskInput, timeout);
          } catch (error) {
            const key = `${state}\n${JSON.stringify(taskInput)}`;
            const delay = vt ? retryDelayMs(retriers[state] ?? [], error, attempts, key) : undefined;
            if (vt && delay !== undefined) await vt.sleep(delay);
            throw error;
          }
        }) as Handlers[string];
        continue;
      }
      tasks[state] = (async (taskInput: unknown) => {
        if (vt && timing?.dueAt) {
          const due = timing.dueAt(taskInput);
          if (due !== undefined) await vt.sleepUntil(typeof due === 'number' ? due : Date.parse(due));
        }
        checkQuota(state, taskInput, 'input');
        const key = `${state}\n${JSON.stringify(taskInput)}`;
        try {
          const out = vt ? await vt.run(() => bind(taskInput)) : await bind(taskInput);
          attempts.delete(key);
          checkQuota(state, out, 'result');
          return out;
        } catch (error) {
          if (exceeded) throw error;
          // Virtual time: the back-off the Retry field asks for passes on the twin's clock before the retry.
          const delay = vt ? retryDelayMs(retriers[state] ?? [], error, attempts, key) : undefined;
          if (vt && delay !== undefined) await vt.sleep(delay);
          throw error;
        }
      }) as Handlers[string];
    }
    // Distributed Map states: a map run each (the library runs them as Tasks, see localDefinition).
    for (const [state, map] of distributedMaps(machine.definition.States)) {
      tasks[state] = (async (taskInput: unknown) => {
        checkQuota(state, taskInput, 'input');
        const out = await this.runMap(machine, execution, state, map, taskInput);
        checkQuota(state, out, 'result');
        return out;
      }) as Handlers[string];
    }
    const zero = (names: string[]) => Object.fromEntries(names.map((n) => [n, 0]));
    const waits = stateNames(machine.definition, 'Wait');
    const retryable = Object.keys(retriers);
    const run = sm.run(input as never, {
      overrides: {
        taskResourceLocalHandlers: tasks,
        ...(virtual ? { waitTimeOverrides: zero(waits), retryIntervalOverrides: zero(retryable) } : {}),
      },
      noThrowOnAbort: true,
      context: {
        Execution: {
          Id: execution.executionArn,
          Name: execution.name,
          StartTime: new Date(execution.startDate).toISOString(),
          [TWIN_START_TIME]: new Date(execution.startDate).toISOString(),
          Input: input as never,
        },
        Task: { Token: LOCAL_TOKEN_PLACEHOLDER },
      },
    });
    execution.abort = () => {
      run.abort();
      for (const mapRun of execution.mapRuns ?? []) this.abortMapRun(mapRun);
    };
    const recording = (async () => {
      for await (const event of run.eventLogs) {
        // A state's output over the quota names that state, even when the next task's input check stopped it first.
        if (
          event.type === 'StateExited' &&
          measure(event.state.name, event.state.output) > STATE_DATA_LIMIT_BYTES &&
          !exceededOutput
        ) {
          exceededOutput = `The state/task '${event.state.name}' returned a result with a size exceeding the maximum number of bytes service limit.`;
          execution.abort?.();
        }
        if (event.type === 'StateEntered') {
          execution.transitions.push({
            state: event.state.name,
            ...(event.index !== undefined ? { iteration: event.index } : {}),
            at: this.clock.now(),
          });
          parent?.execution.transitions.push({
            state: event.state.name,
            iteration: parent.index,
            at: this.clock.now(),
          });
        }
      }
    })();
    let outcome: { output: unknown } | { error: unknown };
    try {
      outcome = { output: await run.result };
    } catch (error) {
      outcome = { error };
    }
    await recording.catch(() => undefined);
    exceeded = exceededOutput ?? exceeded;
    if (execution.status === 'RUNNING') {
      if (exceeded) {
        execution.status = 'FAILED';
        execution.error = 'States.DataLimitExceeded';
        execution.cause = exceeded;
      } else if ('output' in outcome) {
        execution.status = 'SUCCEEDED';
        execution.output = JSON.stringify(outcome.output);
      } else {
        const error = outcome.error;
        execution.status = 'FAILED';
        const cause = (error as { cause?: { name?: string; message?: string } }).cause;
        execution.error = cause?.name ?? (error as Error).name;
        execution.cause = cause?.message ?? (error as Error).message;
      }
    }
    execution.stopDate ??= this.clock.now();
  }

  // ---- Distributed Map ---------------------------------------------------------------------------------------------

  /**
   * A Distributed Map state's map run (its effective input, after InputPath, in; its result out, before ResultSelector
   * and ResultPath): the items read, one child execution per item at most MaxConcurrency at once, the run failed
   * with States.ExceedToleratedFailureThreshold once more children failed than it tolerates, the results written
   * by the ResultWriter (then the state's result is the map run's ARN and the manifest's location) or returned.
   */
  private async runMap(
    machine: LocalStateMachine,
    execution: LocalExecution,
    stateName: string,
    state: DistributedMapState,
    input: unknown,
  ): Promise<unknown> {
    const vt = this.virtualTime;
    const io = <T>(work: () => Promise<T>): Promise<T> => (vt ? vt.run(work) : work());
    const context = {
      Execution: {
        Id: execution.executionArn,
        Name: execution.name,
        StartTime: new Date(execution.startDate).toISOString(),
        Input: JSON.parse(execution.input) as unknown,
      },
      StateMachine: { Id: machine.arn, Name: machine.name },
    };
    const items = await io(() => this.mapItems(machine, state, input, context));
    const selector = state.ItemSelector ?? state.Parameters;
    const inputs = items.map((value, index) =>
      selector ? payload(selector, input, { ...context, Map: { Item: { Index: index, Value: value } } }) : value,
    );
    const label = state.Label ?? stateName;
    const runId = randomUUID();
    const processor: LocalStateMachine = {
      arn: `${machine.arn}/${label}`,
      name: `${machine.name}/${label}`,
      region: machine.region,
      definition: {
        StartAt: state.ItemProcessor.StartAt,
        States: state.ItemProcessor.States,
      } as StateMachineDefinition,
      tasks: machine.tasks,
      timing: machine.timing,
      creationDate: machine.creationDate,
      ...(machine.storage ? { storage: machine.storage } : {}),
    };
    // The map run starts its children as the state machine's role (IAM policies for Distributed Map states).
    const refused = machine.storage?.authorize?.([{ action: 'states:StartExecution', resource: machine.arn }]);
    if (refused) throw new TaskError('States.Runtime', refused);
    const maxConcurrency = state.MaxConcurrency && state.MaxConcurrency > 0 ? state.MaxConcurrency : 10_000;
    const mapRun: MapRun = {
      mapRunArn: `arn:aws:states:${machine.region}:${this.accountId}:mapRun:${machine.name}/${label}:${runId}`,
      state: stateName,
      maxConcurrency,
      peakConcurrency: 0,
      children: [],
      status: 'RUNNING',
    };
    (execution.mapRuns ??= []).push(mapRun);
    const tolerated = toleratedFailures(state, inputs.length);
    let failed = 0;
    let next = 0;
    let running = 0;
    let exceeded = false;
    let refusedDescribe: string | undefined;
    await new Promise<void>((settle) => {
      const startNext = (): void => {
        while (running < maxConcurrency && next < inputs.length && mapRun.status === 'RUNNING' && !exceeded) {
          const index = next++;
          const child = this.startChild(processor, mapRun, execution, inputs[index], index);
          running++;
          mapRun.peakConcurrency = Math.max(mapRun.peakConcurrency, running);
          void child.done.then(() => {
            running--;
            // The map run collects the child's result as the state machine's role (DescribeExecution).
            refusedDescribe ??= machine.storage?.authorize?.([
              { action: 'states:DescribeExecution', resource: child.executionArn },
            ]);
            if (refusedDescribe && !exceeded) {
              exceeded = true;
              this.abortMapRun(mapRun, 'RUNNING', machine.storage);
            }
            if (child.status !== 'SUCCEEDED') failed++;
            if (failed > tolerated && !exceeded) {
              exceeded = true;
              this.abortMapRun(mapRun, 'RUNNING', machine.storage);
            }
            startNext();
          });
        }
        if (running === 0) settle();
      };
      startNext();
    });
    if (mapRun.status === 'ABORTED') throw new TaskError('States.Runtime', 'The map run was aborted');
    if (refusedDescribe) {
      mapRun.status = 'FAILED';
      throw new TaskError('States.Runtime', refusedDescribe);
    }
    const entries = mapRun.children.map((child) => resultEntry(child, processor.arn));
    if (state.ResultWriter) {
      mapRun.resultWriterDetails = await io(() =>
        this.writeResults(machine, state.ResultWriter!, input, context, mapRun, runId, entries),
      );
    }
    if (exceeded) {
      mapRun.status = 'FAILED';
      throw new TaskError(
        'States.ExceedToleratedFailureThreshold',
        `The specified tolerated failure threshold was exceeded: ${failed} of ${inputs.length} items failed`,
      );
    }
    mapRun.status = 'SUCCEEDED';
    if (mapRun.resultWriterDetails)
      return { MapRunArn: mapRun.mapRunArn, ResultWriterDetails: mapRun.resultWriterDetails };
    // Without a ResultWriter the children's outputs are the state's result (a failed child's, its whole entry).
    return entries.map((e) => (e.Status === 'SUCCEEDED' ? (JSON.parse(e.Output ?? 'null') as unknown) : e));
  }

  /** The items: the ItemReader's S3 object (a JSON array), or the array at ItemsPath. */
  private async mapItems(
    machine: LocalStateMachine,
    state: DistributedMapState,
    input: unknown,
    context: object,
  ): Promise<unknown[]> {
    const reader = state.ItemReader;
    if (!reader) {
      const items = readPath(input, state.ItemsPath ?? '$');
      if (!Array.isArray(items))
        throw new TaskError('States.Runtime', `ItemsPath ${state.ItemsPath ?? '$'} does not point to an array`);
      return items;
    }
    if (reader.Resource !== 'arn:aws:states:::s3:getObject' || reader.ReaderConfig?.InputType !== 'JSON')
      throw new TaskError('States.Runtime', 'the twin reads items from one JSON object (s3:getObject, InputType JSON)');
    const { Bucket, Key } = payload(reader.Parameters ?? {}, input, context) as { Bucket?: unknown; Key?: unknown };
    if (typeof Bucket !== 'string' || typeof Key !== 'string')
      throw new TaskError('States.ItemReaderFailed', 'The ItemReader needs a Bucket and a Key');
    if (!machine.storage) throw new TaskError('States.ItemReaderFailed', 'Amazon S3 is not available on this twin');
    let text: string;
    try {
      text = await machine.storage.getObject(Bucket, Key);
    } catch (error) {
      const e = error as Error;
      throw new TaskError(
        'States.ItemReaderFailed',
        `Unable to read s3://${Bucket}/${Key}: ${e.name}: ${e.message || 'Amazon S3 refused the request'}`,
      );
    }
    let items: unknown;
    try {
      items = JSON.parse(text);
    } catch {
      throw new TaskError('States.ItemReaderFailed', `s3://${Bucket}/${Key} is not JSON`);
    }
    if (!Array.isArray(items))
      throw new TaskError('States.ItemReaderFailed', `s3://${Bucket}/${Key} is not a JSON array`);
    const max = reader.ReaderConfig.MaxItems;
    return max && max > 0 ? items.slice(0, max) : items;
  }

  /** One item's child execution of the ItemProcessor (an input over 256 KiB fails it at once). */
  private startChild(
    processor: LocalStateMachine,
    mapRun: MapRun,
    parent: LocalExecution,
    input: unknown,
    index: number,
  ): LocalExecution {
    const name = randomUUID();
    const text = JSON.stringify(input ?? null);
    const child: LocalExecution = {
      executionArn: `arn:aws:states:${processor.region}:${this.accountId}:execution:${processor.name}:${name}`,
      stateMachineArn: processor.arn,
      name,
      region: processor.region,
      input: text,
      status: 'RUNNING',
      startDate: this.clock.now(),
      transitions: [],
      dataBytes: {},
      done: Promise.resolve(),
    };
    mapRun.children[index] = child;
    if (Buffer.byteLength(text) > STATE_DATA_LIMIT_BYTES) {
      child.status = 'FAILED';
      child.error = 'States.DataLimitExceeded';
      child.cause = `The execution input of item ${index} exceeds the maximum number of bytes service limit.`;
      child.stopDate = this.clock.now();
      return child;
    }
    child.done = this.run(processor, child, input, { execution: parent, index });
    return child;
  }

  /**
   * Stops a map run: its running children are aborted (`keep`: the run itself goes on to fail), by the state
   * machine's role (StopExecution) when the map run stops them itself.
   */
  private abortMapRun(mapRun: MapRun, keep?: 'RUNNING', storage?: MapRunStorage): void {
    if (mapRun.status !== 'RUNNING') return;
    if (!keep) mapRun.status = 'ABORTED';
    for (const child of mapRun.children) {
      if (child?.status !== 'RUNNING') continue;
      storage?.authorize?.([{ action: 'states:StopExecution', resource: child.executionArn }]);
      child.status = 'ABORTED';
      child.stopDate = this.clock.now();
      child.abort?.();
    }
  }

  /** ResultWriter: the entries by status (SUCCEEDED_0.json, FAILED_0.json), then manifest.json, under Prefix/<run id>/. */
  private async writeResults(
    machine: LocalStateMachine,
    writer: NonNullable<DistributedMapState['ResultWriter']>,
    input: unknown,
    context: object,
    mapRun: MapRun,
    runId: string,
    entries: ResultEntry[],
  ): Promise<{ Bucket: string; Key: string }> {
    const { Bucket, Prefix = '' } = payload(writer.Parameters ?? {}, input, context) as {
      Bucket?: unknown;
      Prefix?: unknown;
    };
    if (writer.Resource !== 'arn:aws:states:::s3:putObject' || typeof Bucket !== 'string' || typeof Prefix !== 'string')
      throw new TaskError('States.ResultWriterFailed', 'The ResultWriter needs s3:putObject, a Bucket and a Prefix');
    const storage = machine.storage;
    if (!storage) throw new TaskError('States.ResultWriterFailed', 'Amazon S3 is not available on this twin');
    const base = `${Prefix.replace(/\/+$/, '')}${Prefix ? '/' : ''}${runId}`;
    const files: Record<'FAILED' | 'PENDING' | 'SUCCEEDED', { Key: string; Size: number }[]> = {
      FAILED: [],
      PENDING: [],
      SUCCEEDED: [],
    };
    const put = async (key: string, body: string): Promise<void> => {
      try {
        await storage.putObject(Bucket, key, body);
      } catch (error) {
        const e = error as Error;
        throw new TaskError(
          'States.ResultWriterFailed',
          `Unable to write s3://${Bucket}/${key}: ${e.name}: ${e.message}`,
        );
      }
    };
    for (const status of ['SUCCEEDED', 'FAILED'] as const) {
      const own = entries.filter((e) => (status === 'SUCCEEDED' ? e.Status === 'SUCCEEDED' : e.Status !== 'SUCCEEDED'));
      if (own.length === 0) continue;
      const key = `${base}/${status}_0.json`;
      const body = JSON.stringify(own);
      await put(key, body);
      files[status].push({ Key: key, Size: Buffer.byteLength(body) });
    }
    const manifest = { DestinationBucket: Bucket, MapRunArn: mapRun.mapRunArn, ResultFiles: files };
    const key = `${base}/manifest.json`;
    await put(key, JSON.stringify(manifest));
    return { Bucket, Key: key };
  }
}

// ---- definition helpers -----------------------------------------------------------------------------------------------

type States = StateMachineDefinition['States'];

function walk(states: States, visit: (name: string, state: States[string]) => void): void {
  for (const [name, state] of Object.entries(states)) {
    visit(name, state);
    if (state.Type === 'Map') {
      const inner = state.ItemProcessor ?? state.Iterator;
      if (inner) walk(inner.States, visit);
    }
    if (state.Type === 'Parallel') for (const branch of state.Branches) walk(branch.States, visit);
  }
}

function stateNames(definition: StateMachineDefinition, type: string): string[] {
  const names: string[] = [];
  walk(definition.States, (name, state) => {
    if (state.Type === type) names.push(name);
  });
  return names;
}

/**
 * aws-local-stepfunctions stamps `$$.Execution.StartTime` with the wall clock whenever it starts a machine, each Map
 * iteration included; AWS gives every state the execution's start. The twin passes that (in twin time) under this
 * name and points the definition's `$$.Execution.StartTime` paths at it. Map iterations do not get it: a definition
 * passes the start down through the Map's ItemSelector (evaluated in the execution's context), as replicate does.
 */
const TWIN_START_TIME = 'TwinStartTime';

/** Longer than any wait; within setTimeout's range (2^31 ms). */
const NO_TIMEOUT_SECONDS = 2_000_000;

// ---- Distributed Map helpers --------------------------------------------------------------------------------------

type PayloadTemplate = Record<string, unknown>;

/** The fields of a Distributed Map state the twin runs (https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html). */
interface DistributedMapState {
  Type: 'Map';
  ItemProcessor: { ProcessorConfig: { Mode: 'DISTRIBUTED'; ExecutionType?: string }; StartAt: string; States: States };
  ItemReader?: {
    Resource: string;
    ReaderConfig?: { InputType?: string; MaxItems?: number };
    Parameters?: PayloadTemplate;
  };
  ItemsPath?: string;
  ItemSelector?: PayloadTemplate;
  Parameters?: PayloadTemplate;
  MaxConcurrency?: number;
  ToleratedFailurePercentage?: number;
  ToleratedFailureCount?: number;
  ResultWriter?: { Resource: string; Parameters?: PayloadTemplate };
  Label?: string;
}

const isDistributedMap = (state: unknown): state is DistributedMapState =>
  (state as { Type?: string }).Type === 'Map' &&
  (state as DistributedMapState).ItemProcessor?.ProcessorConfig?.Mode === 'DISTRIBUTED';

/** The Distributed Map states an execution of `states` runs itself (not those inside another's ItemProcessor). */
function distributedMaps(states: States): Map<string, DistributedMapState> {
  const found = new Map<string, DistributedMapState>();
  for (const [name, state] of Object.entries(states)) {
    if (isDistributedMap(state)) found.set(name, state);
    else if (state.Type === 'Map') {
      const inner = state.ItemProcessor ?? state.Iterator;
      if (inner) for (const [n, s] of distributedMaps(inner.States)) found.set(n, s);
    } else if (state.Type === 'Parallel')
      for (const branch of state.Branches) for (const [n, s] of distributedMaps(branch.States)) found.set(n, s);
  }
  return found;
}

/** The resource a Distributed Map state is bound to once handed to aws-local-stepfunctions as a Task. */
const MAP_RUN_RESOURCE = 'arn:aws:states:::twin:mapRun';

/** A Distributed Map state as a Task of the same flow fields (its map run is the task's work). */
function mapRunTask(state: DistributedMapState): States[string] {
  const kept = ['Comment', 'InputPath', 'OutputPath', 'ResultPath', 'ResultSelector', 'Retry', 'Catch', 'Next', 'End'];
  const task: Record<string, unknown> = {
    Type: 'Task',
    Resource: MAP_RUN_RESOURCE,
    TimeoutSeconds: NO_TIMEOUT_SECONDS,
  };
  for (const field of kept) if (field in state) task[field] = (state as unknown as Record<string, unknown>)[field];
  return task as unknown as States[string];
}

function replaceDistributedMaps(states: States): void {
  for (const [name, state] of Object.entries(states)) {
    if (isDistributedMap(state)) states[name] = mapRunTask(state);
    else if (state.Type === 'Map') {
      const inner = state.ItemProcessor ?? state.Iterator;
      if (inner) replaceDistributedMaps(inner.States);
    } else if (state.Type === 'Parallel') for (const branch of state.Branches) replaceDistributedMaps(branch.States);
  }
}

/**
 * A reference path's value (`$`, `$.a.b`, `$.a[0]`; the twin's Distributed Maps need no more). A path with no value
 * is States.Runtime, as on AWS.
 */
function readPath(data: unknown, path: string): unknown {
  const m = /^\$((?:\.[A-Za-z_][\w-]*|\[\d+\])*)$/.exec(path);
  if (!m) throw new TaskError('States.Runtime', `The twin reads plain reference paths only ($.a.b[0]), not '${path}'`);
  let value = data;
  for (const [, key, index] of (m[1] ?? '').matchAll(/\.([A-Za-z_][\w-]*)|\[(\d+)\]/g)) {
    const holder = value as Record<string, unknown> | unknown[] | null;
    value =
      holder === null || typeof holder !== 'object'
        ? undefined
        : key !== undefined
          ? (holder as Record<string, unknown>)[key]
          : (holder as unknown[])[Number(index)];
    if (value === undefined) throw new TaskError('States.Runtime', `Invalid path '${path}': No results for path`);
  }
  return value;
}

/** A payload template (Parameters, ItemSelector, an ItemReader's or ResultWriter's Parameters) applied. */
function payload(template: unknown, input: unknown, context: object): unknown {
  if (Array.isArray(template)) return template.map((t) => payload(t, input, context));
  if (!template || typeof template !== 'object') return template;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(template)) {
    if (key.endsWith('.$') && typeof value === 'string') {
      out[key.slice(0, -2)] = value.startsWith('$$') ? readPath(context, value.slice(1)) : readPath(input, value);
    } else out[key] = payload(value, input, context);
  }
  return out;
}

/** How many failed children a map run tolerates: the count and the percentage given (none given: no failure). */
function toleratedFailures(state: DistributedMapState, items: number): number {
  const bounds: number[] = [];
  if (state.ToleratedFailureCount !== undefined) bounds.push(state.ToleratedFailureCount);
  if (state.ToleratedFailurePercentage !== undefined)
    bounds.push(Math.floor((state.ToleratedFailurePercentage / 100) * items));
  return bounds.length ? Math.min(...bounds) : 0;
}

/** A child execution as a ResultWriter's result file lists it (Transformation NONE: its metadata with its I/O). */
export interface ResultEntry {
  ExecutionArn: string;
  Input: string;
  InputDetails: { Included: boolean };
  Name: string;
  Output?: string;
  OutputDetails?: { Included: boolean };
  Error?: string;
  Cause?: string;
  RedriveCount: number;
  RedriveStatus: string;
  RedriveStatusReason: string;
  StartDate: string;
  StateMachineArn: string;
  Status: ExecutionStatus;
  StopDate: string;
}

function resultEntry(child: LocalExecution, stateMachineArn: string): ResultEntry {
  const ok = child.status === 'SUCCEEDED';
  return {
    ExecutionArn: child.executionArn,
    Input: child.input,
    InputDetails: { Included: true },
    Name: child.name,
    ...(ok
      ? { Output: child.output ?? 'null', OutputDetails: { Included: true } }
      : { Error: child.error ?? 'States.Runtime', Cause: child.cause ?? '' }),
    RedriveCount: 0,
    RedriveStatus: 'NOT_REDRIVABLE',
    RedriveStatusReason: ok ? 'Execution is SUCCEEDED and cannot be redriven' : 'Execution is in a map run',
    StartDate: new Date(child.startDate).toISOString(),
    StateMachineArn: stateMachineArn,
    Status: child.status,
    StopDate: new Date(child.stopDate ?? child.startDate).toISOString(),
  };
}

/**
 * The definition as aws-local-stepfunctions runs it. It resolves a task's TimeoutSecondsPath against the task's
 * effective input (after Parameters), where AWS resolves it against the state's input; token waits time out here
 * instead (`TaskTiming.timeoutSeconds`), so the library is told to wait longer than any of them.
 */
function localDefinition(definition: StateMachineDefinition): StateMachineDefinition {
  const copy = JSON.parse(
    JSON.stringify(definition).replaceAll('"$$.Execution.StartTime"', () => `"$$.Execution.${TWIN_START_TIME}"`),
  ) as StateMachineDefinition;
  // Distributed Maps run as the twin's map runs (runMap): the library sees a Task in their place.
  replaceDistributedMaps(copy.States);
  const waiting = waitForTokenStates(copy);
  walk(copy.States, (name, state) => {
    if (state.Type !== 'Task') return;
    const task = state as { TimeoutSeconds?: number; TimeoutSecondsPath?: string };
    if (waiting.has(name)) delete task.TimeoutSecondsPath;
    // The library's default is 60 s of real time; AWS has no default task timeout (99999999 s). A task sleeping
    // through its retry back-off in virtual time must not time out because the machine is busy.
    if (waiting.has(name) || (task.TimeoutSeconds === undefined && task.TimeoutSecondsPath === undefined))
      task.TimeoutSeconds = NO_TIMEOUT_SECONDS;
  });
  return copy;
}

/** Task states' fixed `TimeoutSeconds` (a token wait's `TimeoutSecondsPath` needs a `TaskTiming` instead). */
function taskTimeoutSeconds(definition: StateMachineDefinition): Map<string, number> {
  const timeouts = new Map<string, number>();
  walk(definition.States, (name, state) => {
    const seconds = (state as { TimeoutSeconds?: unknown }).TimeoutSeconds;
    if (state.Type === 'Task' && typeof seconds === 'number') timeouts.set(name, seconds);
  });
  return timeouts;
}

/** Task states whose resource waits for a task token (`arn:aws:states:::<service>:<action>.waitForTaskToken`). */
function waitForTokenStates(definition: StateMachineDefinition): Set<string> {
  const names = new Set<string>();
  walk(definition.States, (name, state) => {
    if (state.Type === 'Task' && state.Resource.endsWith('.waitForTaskToken')) names.add(name);
  });
  return names;
}

export function taskStates(definition: StateMachineDefinition): string[] {
  return stateNames(definition, 'Task');
}

type Retrier = {
  ErrorEquals: string[];
  IntervalSeconds?: number;
  MaxAttempts?: number;
  BackoffRate?: number;
  MaxDelaySeconds?: number;
};

function retriersByState(definition: StateMachineDefinition): Record<string, Retrier[]> {
  const out: Record<string, Retrier[]> = {};
  walk(definition.States, (name, state) => {
    if ('Retry' in state && state.Retry?.length) out[name] = state.Retry;
  });
  return out;
}

/** The back-off Step Functions would wait before retrying this error (no jitter: the upper bound), or undefined. */
function retryDelayMs(
  retriers: Retrier[],
  error: unknown,
  attempts: Map<string, number[]>,
  key: string,
): number | undefined {
  const name = (error as { name?: string }).name ?? 'Error';
  const index = retriers.findIndex(
    (r) =>
      r.ErrorEquals.includes(name) ||
      r.ErrorEquals.includes('States.ALL') ||
      r.ErrorEquals.includes('States.TaskFailed'),
  );
  if (index < 0) return undefined;
  const r = retriers[index] as Retrier;
  const counts = attempts.get(key) ?? [];
  const n = counts[index] ?? 0;
  if (n >= (r.MaxAttempts ?? 3)) return undefined;
  counts[index] = n + 1;
  attempts.set(key, counts);
  const seconds = (r.IntervalSeconds ?? 1) * (r.BackoffRate ?? 2) ** n;
  return Math.min(seconds, r.MaxDelaySeconds ?? Number.POSITIVE_INFINITY) * 1000;
}
