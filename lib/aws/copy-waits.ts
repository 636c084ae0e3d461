import { DeleteItemCommand, PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';

/**
 * The table of replications waiting for a copy: one item per copy (key `<dr region>/<image id>`, or
 * `<dr region>/<DR account>/<image id>` for a copy an isolated DR account owns) holding the task
 * token of the execution that waits for it. A tag cannot hold it (tokens run to 2,048 characters, tag values to
 * 256); DynamoDB gives an atomic take (DeleteItem returning the old item), so whoever takes a token — the copy's
 * event handler or the waiting task itself — is the only one to use it, and a TTL removes items nobody took.
 */
export const REQUIRED_PERMISSIONS = ['dynamodb:PutItem', 'dynamodb:DeleteItem'] as const;

export interface CopyWait {
  /** The copy's (DR) region. */
  region: string;
  /** The DR account owning the copy (none: ami-dr's own account). */
  account?: string | undefined;
  imageId: string;
  token: string;
  /** The waiting execution (for logs and operators). */
  execution?: string;
  /** What the waiting state knows of the copy (JSON): the taker completes the task with it, updated. */
  status: string;
  /** Epoch seconds after which the item is dead (the table's TTL attribute). */
  expiresAt: number;
}

/**
 * A DR account's copy is keyed by its account too: only an event from that account (forwarded by its rule) can
 * take the token, and an event of ami-dr's own account never takes a DR account's.
 */
export const copyWaitKey = (region: string, imageId: string, account?: string): string =>
  account ? `${region}/${account}/${imageId}` : `${region}/${imageId}`;

/** Records the waiting task's token; a later wait for the same copy replaces it (the earlier one has timed out). */
export async function putCopyWait(ddb: DynamoDBClient, table: string, wait: CopyWait): Promise<void> {
  await ddb.send(
    new PutItemCommand({
      TableName: table,
      Item: {
        copy: { S: copyWaitKey(wait.region, wait.imageId, wait.account) },
        token: { S: wait.token },
        status: { S: wait.status },
        ...(wait.execution ? { execution: { S: wait.execution } } : {}),
        expiresAt: { N: String(wait.expiresAt) },
      },
    }),
  );
}

/**
 * Removes and returns the token waiting for the copy `imageId` in `region` (of the DR account `account`, none: the
 * own account's), if any: two takers never get the same token.
 */
export async function takeCopyWait(
  ddb: DynamoDBClient,
  table: string,
  region: string,
  imageId: string,
  account?: string,
): Promise<{ token: string; status: string } | undefined> {
  const out = await ddb.send(
    new DeleteItemCommand({
      TableName: table,
      Key: { copy: { S: copyWaitKey(region, imageId, account) } },
      ReturnValues: 'ALL_OLD',
    }),
  );
  const token = out.Attributes?.token?.S;
  return token ? { token, status: out.Attributes?.status?.S ?? '{}' } : undefined;
}
