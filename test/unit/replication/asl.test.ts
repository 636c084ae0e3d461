import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import validator from 'asl-validator';
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../local/twin/clock.ts';
import { SLOT_WAIT } from '../../../lib/domain/replication-steps.ts';
import type { TwinRequest } from '../../../local/twin/http.ts';
import { LocalStepFunctions, type TaskBinding, type TaskTiming } from '../../../local/twin/stepfunctions.ts';

const TEXT = readFileSync(join(import.meta.dirname, '..', '..', '..', 'statemachines', 'replicate.asl.json'), 'utf8');
const SUBSTITUTIONS = [
  'CheckSource',
  'StartCopy',
  'AwaitCopy',
  'AwaitSlot',
  'CheckCopy',
  'FinalizeCopy',
  'CleanupCopy',
  'Summarize',
];
const definition = JSON.parse(
  TEXT.replace(
    /\$\{(\w+)FunctionArn\}/g,
    (_, n: string) => `arn:aws:lambda:us-east-1:000000000000:function:ami-dr-dev-${n}`,
  ),
) as StateMachineDefinition;
type AnyState = Record<string, unknown> & { Type: string };
const states = definition.States as unknown as Record<string, AnyState>;
const map = states.ReplicateToRegions as AnyState & { ItemProcessor: { States: Record<string, AnyState> } };
const branch = map.ItemProcessor.States;
type Retrier = { ErrorEquals: string[]; IntervalSeconds: number; MaxAttempts: number; BackoffRate: number };
const retrier = (state: AnyState, error: string) =>
  (state.Retry as Retrier[] | undefined)?.find((r) => r.ErrorEquals.includes(error));

describe('statemachines/replicate.asl.json', () => {
  it('is valid ASL and uses exactly the DefinitionSubstitutions serverless.yml provides', () => {
    const result = validator(definition);
    expect(result.errors).toEqual([]);
    expect(result.isValid).toBe(true);
    expect([...new Set([...TEXT.matchAll(/\$\{(\w+)FunctionArn\}/g)].map((m) => m[1]))].sort()).toEqual(
      [...SUBSTITUTIONS].sort(),
    );
  });

  it('fans out over the DR regions with the policy-given concurrency', () => {
    expect(map).toMatchObject({ Type: 'Map', ItemsPath: '$.targets', MaxConcurrencyPath: '$.maxConcurrency' });
  });

  it('waits for the source with SecondsPath, and for a copy with a task token that times out into one CheckCopy', () => {
    expect(states.WaitForSource).toMatchObject({ Type: 'Wait', SecondsPath: '$.check.waitSeconds' });
    expect(branch.WaitForCopy).toMatchObject({
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
      Parameters: { Payload: { 'token.$': '$$.Task.Token', 'copy.$': '$.copy' } },
      TimeoutSecondsPath: '$.copy.waitSeconds',
      ResultPath: '$.copy',
      Next: 'CopyDone?',
    });
    const catchers = branch.WaitForCopy!.Catch as { ErrorEquals: string[]; Next: string; ResultPath: string }[];
    expect(catchers.map((c) => [c.ErrorEquals, c.Next])).toEqual([
      [['States.Timeout'], 'CheckCopy'],
      [['States.ALL'], 'CheckCopy'],
    ]);
    // The copy's status survives a timeout: CheckCopy reads it.
    for (const c of catchers) expect(c.ResultPath).not.toBe('$.copy');
  });

  it('retries throttling and Lambda service errors on every task', () => {
    const tasks = [...Object.values(states), ...Object.values(branch)].filter((s) => s.Type === 'Task');
    expect(tasks).toHaveLength(10);
    for (const task of tasks) {
      expect(retrier(task, 'RequestLimitExceeded')).toBeDefined();
      for (const e of ['Lambda.ServiceException', 'Lambda.TooManyRequestsException', 'Lambda.SdkClientException'])
        expect(retrier(task, e)).toBeDefined();
    }
  });

  it('parks a StartCopy refused for the copy quota on a task token, counted, and retries it after a timeout', () => {
    // Not retried on a back-off: the refusal is caught into the copy-slot queue.
    expect(retrier(branch.StartCopy as AnyState, 'ResourceLimitExceeded')).toBeUndefined();
    expect(retrier(branch.StartCopy as AnyState, 'CopyQuotaFullError')).toBeUndefined();
    const catchers = branch.StartCopy!.Catch as { ErrorEquals: string[]; Next: string; ResultPath: string }[];
    expect(catchers[0]).toEqual({ ErrorEquals: ['CopyQuotaFullError'], ResultPath: '$.quota', Next: 'WaitForSlot' });
    expect(branch.StartCopy).toMatchObject({ Parameters: { 'parks.$': '$.queue.parks' } });
    expect(map.ItemSelector).toMatchObject({ queue: { parks: 0 }, 'since.$': '$$.Execution.StartTime' });
    expect(branch.WaitForSlot).toMatchObject({
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
      Parameters: {
        Payload: { 'token.$': '$$.Task.Token', 'since.$': '$.since', 'parks.$': 'States.MathAdd($.queue.parks, 1)' },
      },
      TimeoutSeconds: SLOT_WAIT.timeoutSeconds,
      ResultPath: '$.queue',
      Next: 'StartCopy',
    });
    expect(branch.WaitForSlot!.Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.slotWait', Next: 'SlotWaitEnded' },
    ]);
    expect(branch.SlotWaitEnded).toMatchObject({
      Type: 'Task',
      Parameters: { leave: true, 'parks.$': 'States.MathAdd($.queue.parks, 1)' },
      ResultPath: '$.queue',
      Next: 'StartCopy',
    });
  });

  it('catches every error in a branch, so the Map never fails', () => {
    for (const [name, state] of Object.entries(branch)) {
      expect(state.Type).not.toBe('Fail');
      if (state.Type === 'Task') {
        const catchers = state.Catch as { ErrorEquals: string[]; Next: string }[];
        expect(
          catchers.some((c) => c.ErrorEquals.includes('States.ALL')),
          name,
        ).toBe(true);
      }
    }
  });
});

let sfnUnderTest: LocalStepFunctions | undefined;
const sendTask = (action: string, json: Record<string, unknown>) =>
  sfnUnderTest!.handler({ action, json, region: 'us-east-1', service: 'states' } as unknown as TwinRequest) as {
    status: number;
    body: string;
  };

describe('replicate state machine, executed locally with stand-in tasks', () => {
  const input = {
    source: { region: 'us-east-1', imageId: 'ami-0a1b2c3d4e5f60718' },
    policyVersion: 'abcd1234',
    targets: [
      { region: 'us-west-2', kmsKeyId: 'alias/a' },
      { region: 'eu-west-1', kmsKeyId: 'alias/b' },
    ],
    maxConcurrency: 2,
  };
  const image = { imageId: 'ami-0a1b2c3d4e5f60718', region: 'us-east-1' };

  /** A copy's wait that never hears from its event: the Lambda fails, so the branch goes on to CheckCopy. */
  const noWake: TaskBinding = () => Promise.reject(new Error('token store unavailable'));

  /** The copy-slot queue's tasks: no stand-in StartCopy here is refused for the quota. */
  const noQueue: Record<string, TaskBinding> = {
    WaitForSlot: () => Promise.reject(new Error('not parked')),
    SlotWaitEnded: () => Promise.reject(new Error('not parked')),
  };

  async function run(
    tasks: Record<string, TaskBinding>,
    timing: Record<string, TaskTiming> = {},
    clock = new ManualClock(),
  ) {
    const sfn = new LocalStepFunctions({ accountId: '000000000000', clock });
    const arn = sfn.createStateMachine(
      'us-east-1',
      'replicate',
      definition,
      { SummarizeMapFailure: tasks.Summarize as TaskBinding, WaitForCopy: noWake, ...noQueue, ...tasks },
      timing,
    );
    sfnUnderTest = sfn;
    const execution = sfn.startExecution(arn, 'x', JSON.stringify(input));
    await execution.done;
    return execution;
  }

  it('turns a failing region, and even a failing cleanup, into a result while the other region completes', async () => {
    let summarized: unknown;
    const execution = await run({
      CheckSource: () => Promise.resolve({ verdict: 'ready', image }),
      StartCopy: (i) => {
        const region = (i as { target: { region: string } }).target.region;
        if (region === 'eu-west-1')
          return Promise.reject(Object.assign(new Error('no such key'), { name: 'InvalidKMSKey' }));
        return Promise.resolve({ imageId: 'ami-1', waitSeconds: 30, nextCheckAt: new Date(0).toISOString() });
      },
      CheckCopy: () => Promise.resolve({ state: 'available', pastDeadline: false }),
      FinalizeCopy: () => Promise.resolve({ region: 'us-west-2', status: 'available' }),
      CleanupCopy: () => Promise.reject(Object.assign(new Error('cleanup broke'), { name: 'UnauthorizedOperation' })),
      Summarize: (i) => {
        summarized = i;
        return Promise.resolve({ done: true });
      },
    });
    expect(execution.status).toBe('SUCCEEDED');
    expect((summarized as { results: unknown[] }).results).toEqual([
      { region: 'us-west-2', status: 'available' },
      {
        region: 'eu-west-1',
        status: 'failed',
        error: 'UnauthorizedOperation',
        reason: 'cleanup failed: cleanup broke',
      },
    ]);
  });

  it('wakes a waiting copy by its token (used once), and times an unanswered wait out into one CheckCopy', async () => {
    const clock = new ManualClock();
    const tokens: string[] = [];
    let checks = 0;
    const finalized: string[] = [];
    const execution = await run(
      {
        CheckSource: () => Promise.resolve({ verdict: 'ready', image }),
        StartCopy: (i) =>
          Promise.resolve({
            region: (i as { target: { region: string } }).target.region,
            waitSeconds: 7200,
            state: 'pending',
          }),
        WaitForCopy: (i) => {
          const { token, copy } = i as { token: string; copy: { region: string; state: string } };
          tokens.push(token);
          // us-west-2's event arrives; eu-west-1's is lost.
          if (copy.region === 'us-west-2') {
            setImmediate(() => {
              const output = JSON.stringify({ ...copy, state: 'available', via: 'event' });
              expect(sendTask('SendTaskSuccess', { taskToken: token, output }).status).toBe(200);
              const again = sendTask('SendTaskSuccess', { taskToken: token, output });
              expect(JSON.parse(again.body).__type).toBe('TaskTimedOut');
            });
          }
          return Promise.resolve({});
        },
        CheckCopy: (i) => {
          checks++;
          const { copy } = i as { copy: object };
          return Promise.resolve({ ...copy, state: 'available', via: 'check' });
        },
        FinalizeCopy: (i) => {
          const { copy } = i as { copy: { region: string; via: string } };
          finalized.push(`${copy.region} ${copy.via}`);
          return Promise.resolve({ region: copy.region, status: 'available' });
        },
        CleanupCopy: () => Promise.reject(new Error('not reached')),
        Summarize: () => Promise.resolve({ done: true }),
      },
      {
        WaitForCopy: {
          timeoutSeconds: (i) => (i as { Payload: { copy: { waitSeconds: number } } }).Payload.copy.waitSeconds,
        },
      },
      clock,
    );
    expect(execution.status).toBe('SUCCEEDED');
    expect(new Set(tokens).size).toBe(2);
    expect(checks).toBe(1);
    expect(finalized.sort()).toEqual(['eu-west-1 check', 'us-west-2 event']);
    expect(clock.now() - Date.UTC(2026, 0, 1)).toBe(7200_000);
    expect(JSON.parse(sendTask('SendTaskSuccess', { taskToken: 'nope', output: '{}' }).body).__type).toBe(
      'InvalidToken',
    );
  });

  it('loops on a pending source and ends cleanly, with the reason, when it goes away', async () => {
    let checks = 0;
    const execution = await run({
      CheckSource: () =>
        Promise.resolve(
          ++checks < 3 ? { verdict: 'wait', waitSeconds: 30 } : { verdict: 'stop', reason: 'source is deregistered' },
        ),
      StartCopy: () => Promise.reject(new Error('not reached')),
      CheckCopy: () => Promise.reject(new Error('not reached')),
      FinalizeCopy: () => Promise.reject(new Error('not reached')),
      CleanupCopy: () => Promise.reject(new Error('not reached')),
      Summarize: () => Promise.reject(new Error('not reached')),
    });
    expect(checks).toBe(3);
    expect(execution.status).toBe('SUCCEEDED');
    expect(JSON.parse(execution.output ?? '{}')).toEqual({
      source: input.source,
      outcome: 'skipped',
      reason: 'source is deregistered',
      regions: [],
    });
  });
});
