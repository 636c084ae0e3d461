import {
  DescribeExecutionCommand,
  ListExecutionsCommand,
  SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../local/twin/clock.ts';
import { LocalStepFunctions } from '../../../local/twin/stepfunctions.ts';
import { startTwin, type Twin } from '../../../local/twin/twin.ts';

/** The twin's Step Functions API through the real SFN client: the semantics ami-dr relies on. */

const START = Date.UTC(2026, 0, 1);
const definition = {
  StartAt: 'Wait',
  States: {
    Wait: { Type: 'Wait', SecondsPath: '$.seconds', Next: 'Work' },
    Work: { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:000000000000:function:work', End: true },
  },
} as unknown as StateMachineDefinition;

let twin: Twin;
let clock: ManualClock;
let sfn: LocalStepFunctions;
let client: SFNClient;
let arn: string;
let release: () => void;

beforeEach(async () => {
  clock = new ManualClock(START);
  twin = await startTwin({ clock });
  sfn = new LocalStepFunctions({ accountId: twin.accountId, clock });
  twin.register('states', sfn.handler);
  let gate = new Promise<void>((r) => (release = r));
  arn = sfn.createStateMachine(
    'us-east-1',
    'demo',
    definition,
    {
      Work: async (input) => {
        await gate;
        gate = Promise.resolve();
        return { echoed: input, at: new Date(clock.now()).toISOString() };
      },
    },
    { Work: { dueAt: (input) => START + (input as { seconds: number }).seconds * 1000 } },
  );
  client = new SFNClient({ region: 'us-east-1', endpoint: twin.endpoint, maxAttempts: 1 });
});
afterEach(async () => {
  release();
  sfn.stopAll();
  client.destroy();
  await twin.stop();
});

const start = (name: string, input: unknown) =>
  client.send(new StartExecutionCommand({ stateMachineArn: arn, name, input: JSON.stringify(input) }));

describe('local Step Functions', () => {
  it('returns the running execution for the same name and input, and ExecutionAlreadyExists for another input', async () => {
    const first = await start('one', { seconds: 60 });
    const again = await start('one', { seconds: 60 });
    expect(again.executionArn).toBe(first.executionArn);
    expect(first.executionArn).toBe('arn:aws:states:us-east-1:000000000000:execution:demo:one');
    await expect(start('one', { seconds: 61 })).rejects.toMatchObject({ name: 'ExecutionAlreadyExists' });
  });

  it('runs the Wait on the twin clock, then reports SUCCEEDED with the output; a closed name cannot be reused', async () => {
    const { executionArn } = await start('two', { seconds: 3600 });
    release();
    await sfn.idle();
    const described = await client.send(new DescribeExecutionCommand({ executionArn }));
    expect(described.status).toBe('SUCCEEDED');
    expect(JSON.parse(described.output ?? '{}')).toEqual({ echoed: { seconds: 3600 }, at: '2026-01-01T01:00:00.000Z' });
    expect(described.startDate?.getTime()).toBe(START);
    expect(described.stopDate?.getTime()).toBe(START + 3600_000);
    await expect(start('two', { seconds: 3600 })).rejects.toMatchObject({ name: 'ExecutionAlreadyExists' });
  });

  it('lists executions by status, page by page, and stops one', async () => {
    for (const name of ['a', 'b', 'c']) await start(name, { seconds: 10 });
    await client.send(
      new StopExecutionCommand({
        executionArn: `${arn.replace('stateMachine', 'execution')}:b`,
        error: 'Manual',
        cause: 'test',
      }),
    );
    const page1 = await client.send(
      new ListExecutionsCommand({ stateMachineArn: arn, statusFilter: 'RUNNING', maxResults: 1 }),
    );
    expect(page1.executions).toHaveLength(1);
    const page2 = await client.send(
      new ListExecutionsCommand({
        stateMachineArn: arn,
        statusFilter: 'RUNNING',
        maxResults: 1,
        nextToken: page1.nextToken,
      }),
    );
    expect(page2.nextToken).toBeUndefined();
    expect([...(page1.executions ?? []), ...(page2.executions ?? [])].map((e) => e.name).sort()).toEqual(['a', 'c']);
    const stopped = await client.send(
      new DescribeExecutionCommand({ executionArn: `${arn.replace('stateMachine', 'execution')}:b` }),
    );
    expect(stopped).toMatchObject({ status: 'ABORTED', error: 'Manual', cause: 'test' });
  });

  it('names its errors as Step Functions does', async () => {
    await expect(
      client.send(new StartExecutionCommand({ stateMachineArn: `${arn}-nope`, name: 'x' })),
    ).rejects.toMatchObject({ name: 'StateMachineDoesNotExist' });
    await expect(start('bad name', {})).rejects.toMatchObject({ name: 'InvalidName' });
    await expect(
      client.send(new StartExecutionCommand({ stateMachineArn: arn, name: 'y', input: '{not json' })),
    ).rejects.toMatchObject({ name: 'InvalidExecutionInput' });
    await expect(
      client.send(new DescribeExecutionCommand({ executionArn: `${arn.replace('stateMachine', 'execution')}:none` })),
    ).rejects.toMatchObject({
      name: 'ExecutionDoesNotExist',
    });
  });

  it.each(['CreateActivity', 'toString'])('refuses the operation it does not model (%s)', async (operation) => {
    const res = await fetch(twin.endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': `AWSStepFunctions.${operation}`,
        authorization:
          'AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/states/aws4_request, SignedHeaders=host, Signature=0',
      },
      body: '{}',
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { __type: string }).__type).toBe('UnknownOperationException');
  });
});

describe('local Step Functions: the 256 KiB payload quota', () => {
  const kib = (n: number) => 'x'.repeat(n * 1024);
  const after: unknown[] = [];
  const big = {
    StartAt: 'Items',
    States: {
      Items: {
        Type: 'Map',
        ItemsPath: '$.items',
        ResultPath: '$.results',
        ItemProcessor: {
          ProcessorConfig: { Mode: 'INLINE' },
          StartAt: 'Make',
          States: {
            Make: { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:000000000000:function:make', End: true },
          },
        },
        Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'After' }],
        Next: 'After',
      },
      After: { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:000000000000:function:after', End: true },
    },
  } as unknown as StateMachineDefinition;

  const run = async (items: number[]) => {
    const bigArn = sfn.createStateMachine('us-east-1', 'big', big, {
      Make: (input) => Promise.resolve({ blob: kib(input as number) }),
      After: (input) => {
        after.push(input);
        return Promise.resolve({ done: true });
      },
    });
    const { executionArn } = await client.send(
      new StartExecutionCommand({
        stateMachineArn: bigArn,
        name: `n${items.join('-')}`,
        input: JSON.stringify({ items }),
      }),
    );
    await sfn.idle();
    return client.send(new DescribeExecutionCommand({ executionArn }));
  };

  beforeEach(() => {
    after.length = 0;
    release();
  });

  it('passes states whose data stays within it', async () => {
    expect((await run([100, 100])).status).toBe('SUCCEEDED');
    expect(after).toHaveLength(1);
  });

  it("fails the execution with States.DataLimitExceeded when a Map's results exceed it, which States.ALL does not catch", async () => {
    const described = await run([100, 100, 100]);
    expect(described).toMatchObject({ status: 'FAILED', error: 'States.DataLimitExceeded' });
    expect(described.cause).toContain("'Items'");
    expect(after).toEqual([]);
  });

  it('fails the execution when a task returns more than it', async () => {
    const described = await run([300]);
    expect(described).toMatchObject({ status: 'FAILED', error: 'States.DataLimitExceeded' });
    expect(described.cause).toContain("'Make'");
    expect(after).toEqual([]);
  });
});
