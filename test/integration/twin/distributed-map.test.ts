import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../local/twin/clock.ts';
import { bundleClient, mapRunStorage } from '../../../local/twin/s3.ts';
import { LocalStepFunctions, type ResultEntry } from '../../../local/twin/stepfunctions.ts';
import { startTwin, type Twin } from '../../../local/twin/twin.ts';

/**
 * The twin's Distributed Map, as the Step Functions developer guide describes it (local/README.md names the pages):
 * items read from S3 by the ItemReader, one child execution per item (after ItemSelector) at most MaxConcurrency at
 * once, tolerated failures, and the ResultWriter's manifest.json and result files; the state's output is the map
 * run's ARN and the manifest's location.
 */

const START = Date.UTC(2026, 0, 1);
const BUCKET = 'runs';
const WORK_MS = 1000;

class WorkFailedError extends Error {
  override name = 'WorkFailedError';
}

interface Item {
  n: number;
  fail?: boolean;
  big?: boolean;
}

function definition(map: Record<string, unknown> = {}): StateMachineDefinition {
  return {
    StartAt: 'Units',
    States: {
      Units: {
        Type: 'Map',
        ItemReader: {
          Resource: 'arn:aws:states:::s3:getObject',
          ReaderConfig: { InputType: 'JSON' },
          Parameters: { Bucket: BUCKET, 'Key.$': '$.itemsKey' },
        },
        ItemSelector: { 'item.$': '$$.Map.Item.Value', 'index.$': '$$.Map.Item.Index', 'tag.$': '$.tag' },
        MaxConcurrency: 3,
        ResultWriter: { Resource: 'arn:aws:states:::s3:putObject', Parameters: { Bucket: BUCKET, Prefix: 'results' } },
        ResultPath: '$.map',
        ItemProcessor: {
          ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' },
          StartAt: 'Work',
          States: {
            Work: { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:000000000000:function:work', End: true },
          },
        },
        Catch: [{ ErrorEquals: ['States.ItemReaderFailed'], ResultPath: '$.error', Next: 'ReaderFailed' }],
        Next: 'Done',
        ...map,
      },
      ReaderFailed: { Type: 'Pass', End: true },
      Done: { Type: 'Pass', End: true },
    },
  } as unknown as StateMachineDefinition;
}

let twin: Twin;
let sfn: LocalStepFunctions;
let s3: S3Client;
let running = 0;
let peak = 0;

beforeEach(async () => {
  twin = await startTwin({ clock: new ManualClock(START) });
  sfn = new LocalStepFunctions({ accountId: twin.accountId, clock: twin.clock });
  s3 = bundleClient(twin.s3Endpoint!);
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  running = 0;
  peak = 0;
});
afterEach(async () => {
  sfn.stopAll();
  s3.destroy();
  await twin.stop();
});

/** The item's work: a second of twin time, then its number doubled (or a failure, or a result over 256 KiB). */
async function work(input: unknown): Promise<unknown> {
  const { item } = input as { item: Item };
  running++;
  peak = Math.max(peak, running);
  await sfn.virtualTime!.pause(WORK_MS);
  running--;
  if (item.fail) throw new WorkFailedError(`item ${item.n} failed`);
  if (item.big) return { padding: 'x'.repeat(300 * 1024) };
  return { doubled: item.n * 2 };
}

async function runMap(items: Item[] | undefined, map: Record<string, unknown> = {}) {
  if (items)
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'runs/items.json', Body: JSON.stringify(items) }));
  const arn = sfn.createStateMachine(
    'us-east-1',
    'demo',
    definition(map),
    { Work: work },
    {},
    {
      storage: mapRunStorage(s3),
    },
  );
  const execution = sfn.startExecution(arn, 'run-1', JSON.stringify({ itemsKey: 'runs/items.json', tag: 'nightly' }));
  await execution.done;
  return execution;
}

async function readJson<T>(key: string): Promise<T> {
  const out = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return JSON.parse((await out.Body?.transformToString()) ?? 'null') as T;
}

interface Manifest {
  DestinationBucket: string;
  MapRunArn: string;
  ResultFiles: Record<'FAILED' | 'PENDING' | 'SUCCEEDED', { Key: string; Size: number }[]>;
}

const items = (n: number, failing: number[] = [], big: number[] = []): Item[] =>
  Array.from({ length: n }, (_, i) => ({
    n: i,
    ...(failing.includes(i) ? { fail: true } : {}),
    ...(big.includes(i) ? { big: true } : {}),
  }));

describe('Distributed Map on the twin', () => {
  it('runs a child execution per item read from S3, at most MaxConcurrency at once, and writes the results', async () => {
    const execution = await runMap(items(10));

    expect(execution.error).toBeUndefined();
    expect(execution.status).toBe('SUCCEEDED');
    expect(peak).toBe(3);
    // Ten items of a second each, three at a time: four seconds of twin time.
    expect(execution.stopDate! - execution.startDate).toBe(4 * WORK_MS);
    const output = JSON.parse(execution.output!) as {
      map: { MapRunArn: string; ResultWriterDetails: { Bucket: string; Key: string } };
    };
    expect(Object.keys(output.map).sort()).toEqual(['MapRunArn', 'ResultWriterDetails']);
    const runId = /^arn:aws:states:us-east-1:\d{12}:mapRun:demo\/Units:([0-9a-f-]{36})$/.exec(
      output.map.MapRunArn,
    )?.[1];
    expect(runId).toBeDefined();
    expect(output.map.ResultWriterDetails).toEqual({ Bucket: BUCKET, Key: `results/${runId}/manifest.json` });
    const manifest = await readJson<Manifest>(output.map.ResultWriterDetails.Key);
    expect(manifest).toEqual({
      DestinationBucket: BUCKET,
      MapRunArn: output.map.MapRunArn,
      ResultFiles: {
        FAILED: [],
        PENDING: [],
        SUCCEEDED: [{ Key: `results/${runId}/SUCCEEDED_0.json`, Size: expect.any(Number) as number }],
      },
    });
    const succeeded = await readJson<ResultEntry[]>(manifest.ResultFiles.SUCCEEDED[0]!.Key);
    expect(succeeded).toHaveLength(10);
    expect(succeeded[7]).toMatchObject({
      ExecutionArn: expect.stringMatching(/^arn:aws:states:us-east-1:\d{12}:execution:demo\/Units:/) as string,
      StateMachineArn: expect.stringMatching(/:stateMachine:demo\/Units$/) as string,
      Status: 'SUCCEEDED',
      InputDetails: { Included: true },
      OutputDetails: { Included: true },
    });
    expect(JSON.parse(succeeded[7]!.Input)).toEqual({ item: { n: 7 }, index: 7, tag: 'nightly' });
    expect(succeeded.map((e) => (JSON.parse(e.Output!) as { doubled: number }).doubled)).toEqual(
      items(10).map((i) => i.n * 2),
    );
    // The children ran as executions of their own, listed with the map run, not with the state machine.
    expect(execution.mapRuns?.[0]?.children).toHaveLength(10);
    expect(sfn.executions()).toEqual([execution]);
  });

  it.each([
    ['a failed child within ToleratedFailureCount', 'SUCCEEDED', { ToleratedFailureCount: 1 }, [4]],
    ['failed children past ToleratedFailureCount', 'FAILED', { ToleratedFailureCount: 1 }, [4, 5]],
    ['failed children within ToleratedFailurePercentage', 'SUCCEEDED', { ToleratedFailurePercentage: 20 }, [1, 2]],
    ['failed children past ToleratedFailurePercentage', 'FAILED', { ToleratedFailurePercentage: 20 }, [1, 2, 3]],
    ['a failed child with no tolerance given', 'FAILED', {}, [9]],
  ])('with %s the map run ends %s', async (_, status, tolerance, failing) => {
    const execution = await runMap(items(10, failing), tolerance);

    expect(execution.status).toBe(status);
    if (status === 'FAILED') {
      expect(execution.error).toBe('States.ExceedToleratedFailureThreshold');
      return;
    }
    const output = JSON.parse(execution.output!) as { map: { ResultWriterDetails: { Key: string } } };
    const manifest = await readJson<Manifest>(output.map.ResultWriterDetails.Key);
    expect(manifest.ResultFiles.FAILED).toHaveLength(1);
    const failed = await readJson<ResultEntry[]>(manifest.ResultFiles.FAILED[0]!.Key);
    expect(failed.map((e) => [JSON.parse(e.Input) as unknown, e.Status, e.Error, e.Cause])).toEqual(
      failing.map((n) => [
        { item: { n, fail: true }, index: n, tag: 'nightly' },
        'FAILED',
        'WorkFailedError',
        `item ${n} failed`,
      ]),
    );
    expect(failed[0]).not.toHaveProperty('Output');
    const succeeded = await readJson<ResultEntry[]>(manifest.ResultFiles.SUCCEEDED[0]!.Key);
    expect(succeeded).toHaveLength(10 - failing.length);
  });

  it("checks each child's data on its own: a child's result over 256 KiB fails that child, not the run", async () => {
    const execution = await runMap(items(4, [], [2]), { ToleratedFailureCount: 1 });

    expect(execution.status).toBe('SUCCEEDED');
    const children = execution.mapRuns![0]!.children;
    expect(children.map((c) => c.status)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'FAILED', 'SUCCEEDED']);
    expect(children[2]!.error).toBe('States.DataLimitExceeded');
  });

  it('fails the state with States.ItemReaderFailed when the ItemReader object does not exist (Catch sees it)', async () => {
    const execution = await runMap(undefined);

    expect(execution.status).toBe('SUCCEEDED');
    const output = JSON.parse(execution.output!) as { error: { Error: string; Cause: string } };
    expect(output.error.Error).toBe('States.ItemReaderFailed');
    expect(output.error.Cause).toContain(`s3://${BUCKET}/runs/items.json`);
    expect(execution.transitions.map((t) => t.state)).toEqual(['Units', 'ReaderFailed']);
  });

  it('without an ItemReader maps ItemsPath, and without a ResultWriter returns the outputs', async () => {
    const arn = sfn.createStateMachine(
      'us-east-1',
      'inline',
      definition({ ItemReader: undefined, ItemsPath: '$.inline', ResultWriter: undefined }),
      { Work: work },
    );
    const inline = sfn.startExecution(arn, 'run-2', JSON.stringify({ inline: items(3), tag: 't' }));
    await inline.done;
    expect(inline.status).toBe('SUCCEEDED');
    expect((JSON.parse(inline.output!) as { map: unknown }).map).toEqual([
      { doubled: 0 },
      { doubled: 2 },
      { doubled: 4 },
    ]);
  });
});
