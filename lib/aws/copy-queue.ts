import { DeleteItemCommand, PutItemCommand, QueryCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';

/**
 * The queue of replications waiting for a copy slot: EC2 refused their CopyImage with `ResourceLimitExceeded` (the
 * DR region's concurrent-copy quota is full). One partition per DR region and account (`queue`), items in the order
 * the waiting executions started (`order`: start time, then execution name), each holding the task token of the
 * parked StartCopy. When a copy in that region ends, its replication takes the oldest item (DeleteItem returning the
 * old item: whoever gets it is the only one to use the token) and wakes that waiter.
 */
export const REQUIRED_PERMISSIONS = ['dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:DeleteItem'] as const;

export interface SlotWait {
  /** `queueKey(region, account)`. */
  queue: string;
  /** Sorts oldest first: `<execution start time>#<execution name>`, the same for every park of one branch. */
  order: string;
  token: string;
  /** The region of the waiting execution (its state machine answers SendTaskSuccess for the token). */
  sourceRegion: string;
  /** How many times this branch has parked, this time included (the waiter's next StartCopy gets it back). */
  parks: number;
  /** Epoch seconds after which the item is dead (the table's TTL attribute). */
  expiresAt: number;
}

/** The DR region's partition, per account: the quota is per account and region. */
export const queueKey = (region: string, account: string | undefined): string =>
  account ? `${region}/${account}` : region;

export const slotWaitOrder = (since: string, execution: string): string => `${since}#${execution}`;

/** Parks a waiter; a later park of the same branch (same order key) replaces its earlier, timed-out token. */
export async function putSlotWait(ddb: DynamoDBClient, table: string, wait: SlotWait): Promise<void> {
  await ddb.send(
    new PutItemCommand({
      TableName: table,
      Item: {
        queue: { S: wait.queue },
        order: { S: wait.order },
        token: { S: wait.token },
        sourceRegion: { S: wait.sourceRegion },
        parks: { N: String(wait.parks) },
        expiresAt: { N: String(wait.expiresAt) },
      },
    }),
  );
}

/** The keys of the oldest `limit` waiters in one table's partition (strongly consistent: a park just made is seen). */
export async function oldestSlotWaits(
  ddb: DynamoDBClient,
  table: string,
  queue: string,
  limit: number,
): Promise<{ queue: string; order: string }[]> {
  const out = await ddb.send(
    new QueryCommand({
      TableName: table,
      KeyConditionExpression: '#queue = :queue',
      ExpressionAttributeNames: { '#queue': 'queue' },
      ExpressionAttributeValues: { ':queue': { S: queue } },
      ConsistentRead: true,
      Limit: limit,
    }),
  );
  return (out.Items ?? []).flatMap((item) => (item.order?.S ? [{ queue, order: item.order.S }] : []));
}

/** Removes and returns a waiter, if it is still there: two takers never get the same token. */
export async function takeSlotWait(
  ddb: DynamoDBClient,
  table: string,
  key: { queue: string; order: string },
): Promise<Pick<SlotWait, 'token' | 'sourceRegion' | 'parks'> | undefined> {
  const out = await ddb.send(
    new DeleteItemCommand({
      TableName: table,
      Key: { queue: { S: key.queue }, order: { S: key.order } },
      ReturnValues: 'ALL_OLD',
    }),
  );
  const token = out.Attributes?.token?.S;
  const sourceRegion = out.Attributes?.sourceRegion?.S;
  if (!token || !sourceRegion) return undefined;
  return { token, sourceRegion, parks: Number(out.Attributes?.parks?.N ?? '0') };
}
