import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import validator from 'asl-validator';
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../local/twin/clock.ts';
import { LocalStepFunctions, type TaskBinding } from '../../../local/twin/stepfunctions.ts';

const TEXT = readFileSync(join(import.meta.dirname, '..', '..', '..', 'statemachines', 'replicate.asl.json'), 'utf8');
const SUBSTITUTIONS = ['CheckSource', 'StartCopy', 'CheckCopy', 'FinalizeCopy', 'CleanupCopy', 'Summarize'];
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

  it('waits with SecondsPath (growing intervals computed by the tasks)', () => {
    expect(states.WaitForSource).toMatchObject({ Type: 'Wait', SecondsPath: '$.check.waitSeconds' });
    expect(branch.WaitForCopy).toMatchObject({ Type: 'Wait', SecondsPath: '$.copy.waitSeconds' });
  });

  it('retries throttling and Lambda service errors on every task, and the copy quota longer on StartCopy', () => {
    const tasks = [...Object.values(states), ...Object.values(branch)].filter((s) => s.Type === 'Task');
    expect(tasks).toHaveLength(7);
    for (const task of tasks) {
      expect(retrier(task, 'RequestLimitExceeded')).toBeDefined();
      for (const e of ['Lambda.ServiceException', 'Lambda.TooManyRequestsException', 'Lambda.SdkClientException'])
        expect(retrier(task, e)).toBeDefined();
    }
    const quota = retrier(branch.StartCopy as AnyState, 'ResourceLimitExceeded') as Retrier;
    const throttle = retrier(branch.StartCopy as AnyState, 'RequestLimitExceeded') as Retrier;
    expect(quota.MaxAttempts).toBeGreaterThan(throttle.MaxAttempts);
    expect(quota.IntervalSeconds).toBeGreaterThan(throttle.IntervalSeconds);
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

  async function run(tasks: Record<string, TaskBinding>) {
    const sfn = new LocalStepFunctions({ accountId: '000000000000', clock: new ManualClock() });
    const arn = sfn.createStateMachine('us-east-1', 'replicate', definition, {
      SummarizeMapFailure: tasks.Summarize as TaskBinding,
      ...tasks,
    });
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
