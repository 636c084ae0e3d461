import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { startHarness, type Harness } from './harness.ts';
import { errorName } from './errors.ts';
import { dynamoDbClient } from '../../../lib/aws/clients.ts';

describe('twin DynamoDB', () => {
  let twin: Harness;
  let ddb: DynamoDBClient;
  const TABLE = 'queue';
  beforeAll(async () => {
    twin = await startHarness();
    twin.dynamodb.createTable('us-east-1', TABLE, 'queue', 'order');
    ddb = dynamoDbClient(twin.clients, 'us-east-1');
    // Put out of order, and with a key only UTF-8 byte order puts last ('é' is 0xC3 0xA9, above 'z').
    const rows: [string, string][] = [
      ['eu-west-1', 'b'],
      ['eu-west-1', 'é'],
      ['eu-west-1', 'a'],
      ['eu-west-1', 'z'],
      ['us-west-2', 'a'],
    ];
    for (const [queue, order] of rows)
      await ddb.send(new PutItemCommand({ TableName: TABLE, Item: { queue: { S: queue }, order: { S: order } } }));
  });
  afterAll(async () => {
    await twin.stop();
  });

  const orders = (items: Record<string, { S?: string }>[] | undefined) => (items ?? []).map((i) => i.order?.S);
  const inQueue = { KeyConditionExpression: '#q = :q', ExpressionAttributeNames: { '#q': 'queue' } };
  const values = (more: Record<string, string> = {}) => ({
    ExpressionAttributeValues: Object.fromEntries(
      Object.entries({ ':q': 'eu-west-1', ...more }).map(([k, v]) => [k, { S: v }]),
    ),
  });

  it('Query returns one partition in sort-key order (UTF-8 bytes), reversed by ScanIndexForward false', async () => {
    const up = await ddb.send(new QueryCommand({ TableName: TABLE, ...inQueue, ...values() }));
    expect(orders(up.Items)).toEqual(['a', 'b', 'z', 'é']);
    expect(up).toMatchObject({ Count: 4 });
    expect(up.LastEvaluatedKey).toBeUndefined();
    const down = await ddb.send(
      new QueryCommand({ TableName: TABLE, ...inQueue, ...values(), ScanIndexForward: false }),
    );
    expect(orders(down.Items)).toEqual(['é', 'z', 'b', 'a']);
  });

  it('Query pages with Limit and LastEvaluatedKey, and narrows by a sort-key condition', async () => {
    const first = await ddb.send(new QueryCommand({ TableName: TABLE, ...inQueue, ...values(), Limit: 1 }));
    expect(orders(first.Items)).toEqual(['a']);
    expect(first.LastEvaluatedKey).toEqual({ queue: { S: 'eu-west-1' }, order: { S: 'a' } });
    const next = await ddb.send(
      new QueryCommand({
        TableName: TABLE,
        ...inQueue,
        ...values(),
        Limit: 2,
        ExclusiveStartKey: first.LastEvaluatedKey,
      }),
    );
    expect(orders(next.Items)).toEqual(['b', 'z']);
    const between = await ddb.send(
      new QueryCommand({
        TableName: TABLE,
        KeyConditionExpression: '#q = :q AND #o BETWEEN :lo AND :hi',
        ExpressionAttributeNames: { '#q': 'queue', '#o': 'order' },
        ...values({ ':lo': 'b', ':hi': 'z' }),
      }),
    );
    expect(orders(between.Items)).toEqual(['b', 'z']);
    const after = await ddb.send(
      new QueryCommand({
        TableName: TABLE,
        KeyConditionExpression: '#q = :q AND #o > :a',
        ExpressionAttributeNames: { '#q': 'queue', '#o': 'order' },
        ...values({ ':a': 'b' }),
      }),
    );
    expect(orders(after.Items)).toEqual(['z', 'é']);
  });

  it('Query without the partition key equality, or with an undefined placeholder, is a ValidationException', async () => {
    expect(
      await errorName(
        ddb.send(
          new QueryCommand({
            TableName: TABLE,
            KeyConditionExpression: '#o = :q',
            ExpressionAttributeNames: { '#o': 'order' },
            ...values(),
          }),
        ),
      ),
    ).toBe('ValidationException');
    expect(await errorName(ddb.send(new QueryCommand({ TableName: TABLE, ...inQueue })))).toBe('ValidationException');
  });

  it('GetItem and DeleteItem need the whole key (hash and sort)', async () => {
    const key = { queue: { S: 'us-west-2' }, order: { S: 'a' } };
    expect((await ddb.send(new GetItemCommand({ TableName: TABLE, Key: key }))).Item).toEqual(key);
    expect(await errorName(ddb.send(new GetItemCommand({ TableName: TABLE, Key: { queue: key.queue } })))).toBe(
      'ValidationException',
    );
    const taken = await ddb.send(new DeleteItemCommand({ TableName: TABLE, Key: key, ReturnValues: 'ALL_OLD' }));
    expect(taken.Attributes).toEqual(key);
    const again = await ddb.send(new DeleteItemCommand({ TableName: TABLE, Key: key, ReturnValues: 'ALL_OLD' }));
    expect(again.Attributes).toBeUndefined();
  });
});
