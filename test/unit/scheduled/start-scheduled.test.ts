import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import type { Context } from 'aws-lambda';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const RETENTION = 'arn:aws:states:us-east-1:111122223333:stateMachine:ami-dr-dev-retention';
const context = { functionName: 'startScheduled', awsRequestId: 'r1' } as unknown as Context;
const sfn = mockClient(SFNClient);

/** What the schedule's input transformer hands the starter (serverless.yml). */
const retentionEvent = { job: 'retention', time: '2026-11-30T10:17:05Z', periodMinutes: 60 };

async function loadHandler() {
  vi.resetModules();
  vi.stubEnv('RETENTION_STATE_MACHINE_ARN', RETENTION);
  vi.stubEnv('READINESS_STATE_MACHINE_ARN', '');
  return (await import('../../../functions/start-scheduled.ts')).handler;
}

beforeEach(() => {
  sfn.reset();
  sfn.on(StartExecutionCommand).resolves({ executionArn: `${RETENTION}:retention-2026-11-30T10` });
});
afterEach(() => vi.unstubAllEnvs());

describe('startScheduled handler', () => {
  it('starts the job’s state machine, the execution named after the schedule window', async () => {
    // Act
    const started = await (await loadHandler())(retentionEvent, context);

    // Assess
    expect(sfn).toHaveReceivedCommandWith(StartExecutionCommand, {
      stateMachineArn: RETENTION,
      name: 'retention-2026-11-30T10',
    });
    expect(started).toMatchObject({ alreadyStarted: false, window: { name: 'retention-2026-11-30T10' } });
  });

  it.each([
    ['an unknown job', { ...retentionEvent, job: 'cleanup' }, 'job'],
    ['a time that is not ISO 8601', { ...retentionEvent, time: 'yesterday' }, 'time'],
    ['a fractional period', { ...retentionEvent, periodMinutes: 1.5 }, 'periodMinutes'],
    ['a period of zero', { ...retentionEvent, periodMinutes: 0 }, 'periodMinutes'],
    ['a dryRun that is not a boolean', { ...retentionEvent, dryRun: 'yes' }, 'dryRun'],
  ])('refuses %s, naming the field, and starts nothing', async (_case, event, field) => {
    // Act
    const refused = (await loadHandler())(event, context);

    // Assess
    await expect(refused).rejects.toMatchObject({ issues: [expect.objectContaining({ path: [field] })] });
    expect(sfn).not.toHaveReceivedCommand(StartExecutionCommand);
  });

  it('fails, naming the job, when the environment has no state machine for it', async () => {
    await expect((await loadHandler())({ ...retentionEvent, job: 'readiness' }, context)).rejects.toThrow(
      'no state machine ARN for readiness',
    );
  });
});
