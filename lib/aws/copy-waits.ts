import { DeleteItemCommand, PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';

/**
 * The table of replications waiting for a copy: one item per copy (key `<dr region>/<image id>`) holding the task
 * token of the execution that waits for it. A tag cannot hold it (tokens run to 2,048 characters, tag values to
 * 256); DynamoDB gives an atomic take (DeleteItem returning the old item), so whoever takes a token — the copy's
 * event handler or the waiting task itself — is the only one to use it, and a TTL removes items nobody took.
 */
export const REQUIRED_PERMISSIONS = ['dynamodb:PutItem', 'dynamodb:DeleteItem'] as const;

export interface CopyWait {
  /** The copy's (DR) region. */
  region: string;
  imageId: string;
  token: string;
  /** The waiting execution (for logs and operators). */
  execution?: string;
  /** What the waiting state knows of the copy (JSON): the taker completes the task with it, updated. */
  status: string;
  /** Epoch seconds after which the item is dead (the table's TTL attribute). */
  expiresAt: number;
}

export const copyWaitKey = (region: string, imageId: string): string => `${region}/${imageId}`;

/** Records the waiting task's token; a later wait for the same copy replaces it (the earlier one has timed out). */
export async function putCopyWait(ddb: DynamoDBClient, table: string, wait: CopyWait): Promise<void> {
  await ddb.send(
    new PutItemCommand({
      TableName: table,
      Item: {
        copy: { S: copyWaitKey(wait.region, wait.imageId) },
        token: { S: wait.token },
        status: { S: wait.status },
        ...(wait.execution ? { execution: { S: wait.execution } } : {}),
        expiresAt: { N: String(wait.expiresAt) },
      },
    }),
  );
}

/** Removes and returns the copy's waiting token, if any: two takers never get the same token. */
export async function takeCopyWait(
  ddb: DynamoDBClient,
  table: string,
  region: string,
  imageId: string,
): Promise<{ token: string; status: string } | undefined> {
  const out = await ddb.send(
    new DeleteItemCommand({
      TableName: table,
      Key: { copy: { S: copyWaitKey(region, imageId) } },
      ReturnValues: 'ALL_OLD',
    }),
  );
  const token = out.Attributes?.token?.S;
  return token ? { token, status: out.Attributes?.status?.S ?? '{}' } : undefined;
}
