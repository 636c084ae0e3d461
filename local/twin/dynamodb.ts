import { jsonResponse, TwinServiceError, jsonError, type ServiceHandler, type TwinRequest } from './http.ts';

/**
 * DynamoDB on the twin, as much as ami-dr uses: tables per region with a string hash key and an optional string sort
 * key; PutItem, GetItem and DeleteItem (`ReturnValues: ALL_OLD`), and Query by key condition (the partition key's
 * equality, optionally one sort-key comparison or `begins_with`), in sort-key order (UTF-8 bytes, `ScanIndexForward`
 * reverses it), with `Limit` and `ExclusiveStartKey`/`LastEvaluatedKey` paging, over the JSON 1.0 protocol. Items
 * keep DynamoDB's attribute-value shape (`{ S: '...' }`, `{ N: '1' }`) as sent. TTL is not enforced: expired items
 * stay, as they may on AWS for a while.
 */
type AttributeValue = Record<string, unknown>;
type Item = Record<string, AttributeValue>;

interface Table {
  name: string;
  region: string;
  hashKey: string;
  sortKey: string | undefined;
  /** By `JSON.stringify([hash, sort])`. */
  items: Map<string, Item>;
}

const CONTENT_TYPE = 'application/x-amz-json-1.0';
/** DynamoDB's item size limit. */
const MAX_ITEM_BYTES = 400 * 1024;

export class DynamoDbState {
  private readonly tables = new Map<string, Table>();

  constructor(private readonly accountId: string) {}

  /** Creates a table (idempotent) with a string hash key and, when given, a string sort key. */
  createTable(region: string, name: string, hashKey: string, sortKey?: string): void {
    const id = `${region}/${name}`;
    if (!this.tables.has(id)) this.tables.set(id, { name, region, hashKey, sortKey, items: new Map() });
  }

  /** The items of a table, for assertions. */
  items(region: string, name: string): Item[] {
    return [...(this.tables.get(`${region}/${name}`)?.items.values() ?? [])];
  }

  table(region: string, name: unknown): Table {
    const table = typeof name === 'string' ? this.tables.get(`${region}/${name}`) : undefined;
    if (!table) {
      throw new TwinServiceError(
        'ResourceNotFoundException',
        `Requested resource not found: Table: ${String(name)} not found (account ${this.accountId}, ${region})`,
      );
    }
    return table;
  }
}

const keyMismatch = () =>
  new TwinServiceError('ValidationException', 'The provided key element does not match the schema');

function keyParts(table: Table, key: unknown): [string, string | undefined] {
  const value = (name: string) => {
    const v = (key as Item | undefined)?.[name]?.S;
    if (typeof v !== 'string' || v.length === 0) throw keyMismatch();
    return v;
  };
  return [value(table.hashKey), table.sortKey === undefined ? undefined : value(table.sortKey)];
}

function keyOf(table: Table, key: unknown): string {
  return JSON.stringify(keyParts(table, key));
}

/** A Key argument (GetItem, DeleteItem, ExclusiveStartKey) names the key attributes and nothing else. */
function exactKeyOf(table: Table, key: unknown): string {
  const names = Object.keys((key as Item | undefined) ?? {});
  if (names.length !== (table.sortKey === undefined ? 1 : 2)) throw keyMismatch();
  return keyOf(table, key);
}

/** DynamoDB orders string sort keys by their UTF-8 bytes. */
const byUtf8 = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

type SortCondition = (sort: string) => boolean;

/**
 * A KeyConditionExpression: `<hash> = :v`, optionally `AND` one condition on the sort key (`=`, `<`, `<=`, `>`,
 * `>=`, `BETWEEN :a AND :b`, `begins_with(<sort>, :p)`). Names may be `#placeholders`; values must be `:placeholders`.
 */
function parseKeyCondition(table: Table, r: TwinRequest): { hash: string; sort: SortCondition } {
  const expression = r.json.KeyConditionExpression;
  if (typeof expression !== 'string' || !expression.trim()) {
    throw new TwinServiceError(
      'ValidationException',
      'Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.',
    );
  }
  const names = (r.json.ExpressionAttributeNames ?? {}) as Record<string, string>;
  const values = (r.json.ExpressionAttributeValues ?? {}) as Record<string, AttributeValue>;
  const invalid = (why: string) =>
    new TwinServiceError('ValidationException', `Invalid KeyConditionExpression: ${why}`);
  const name = (token: string) => {
    const resolved = token.startsWith('#') ? names[token] : token;
    if (resolved === undefined)
      throw invalid(`An expression attribute name used in the document path is not defined; attribute name: ${token}`);
    return resolved;
  };
  const value = (token: string) => {
    const v = values[token]?.S;
    if (!token.startsWith(':') || values[token] === undefined)
      throw invalid(`An expression attribute value used in expression is not defined; attribute value: ${token}`);
    if (typeof v !== 'string')
      throw new TwinServiceError(
        'ValidationException',
        'One or more parameter values were invalid: Condition parameter type does not match schema type',
      );
    return v;
  };
  const conditions = splitConditions(expression);
  if (conditions.length > 2)
    throw invalid('Only one condition on the partition key and one on the sort key are allowed');
  let hash: string | undefined;
  let sort: SortCondition = () => true;
  for (const condition of conditions) {
    const begins = /^begins_with\s*\(\s*([#\w]+)\s*,\s*(:\w+)\s*\)$/i.exec(condition);
    const between = /^([#\w]+)\s+BETWEEN\s+(:\w+)\s+AND\s+(:\w+)$/i.exec(condition);
    const compare = /^([#\w]+)\s*(=|<=|>=|<|>)\s*(:\w+)$/.exec(condition);
    const attribute = name((begins ?? between ?? compare)?.[1] ?? '');
    if (!begins && !between && !compare) throw invalid(`Syntax error: ${condition}`);
    if (attribute === table.hashKey) {
      if (!compare || compare[2] !== '=' || hash !== undefined) throw invalid('Query key condition not supported');
      hash = value(compare[3] ?? '');
      continue;
    }
    if (attribute !== table.sortKey) throw invalid('Query condition missed key schema element');
    if (begins) {
      const prefix = value(begins[2] ?? '');
      sort = (s) => s.startsWith(prefix);
    } else if (between) {
      const [low, high] = [value(between[2] ?? ''), value(between[3] ?? '')];
      if (byUtf8(low, high) > 0)
        throw invalid('The BETWEEN operator requires upper bound to be greater than or equal to lower bound');
      sort = (s) => byUtf8(s, low) >= 0 && byUtf8(s, high) <= 0;
    } else if (compare) {
      const bound = value(compare[3] ?? '');
      const ops: Record<string, (c: number) => boolean> = {
        '=': (c) => c === 0,
        '<': (c) => c < 0,
        '<=': (c) => c <= 0,
        '>': (c) => c > 0,
        '>=': (c) => c >= 0,
      };
      const op = ops[compare[2] ?? ''] ?? (() => false);
      sort = (s) => op(byUtf8(s, bound));
    }
  }
  if (hash === undefined) throw invalid('Query condition missed key schema element: ' + table.hashKey);
  return { hash, sort };
}

/** The conditions joined by top-level `AND` (not the one inside `BETWEEN … AND …`). */
function splitConditions(expression: string): string[] {
  const words = expression.trim().split(/\s+AND\s+/i);
  const out: string[] = [];
  for (const word of words) {
    const last = out.at(-1);
    if (last !== undefined && /\sBETWEEN\s+\S+$/i.test(last)) out[out.length - 1] = `${last} AND ${word}`;
    else
      out.push(
        word
          .trim()
          .replace(/^\((.*)\)$/, '$1')
          .trim(),
      );
  }
  return out;
}

/** DynamoDB's default and largest page: 1 MB of items (the twin counts their JSON). */
const MAX_PAGE_BYTES = 1024 * 1024;

function query(table: Table, r: TwinRequest): unknown {
  if (r.json.IndexName !== undefined)
    throw new TwinServiceError('ValidationException', 'The twin has no secondary indexes');
  const { hash, sort } = parseKeyCondition(table, r);
  const limit = r.json.Limit;
  if (limit !== undefined && (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1)) {
    throw new TwinServiceError(
      'ValidationException',
      "1 validation error detected: Value at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1",
    );
  }
  const sortOf = (item: Item) =>
    table.sortKey === undefined ? '' : ((item[table.sortKey]?.S as string | undefined) ?? '');
  const forward = r.json.ScanIndexForward !== false;
  const matching = [...table.items.values()]
    .filter((item) => item[table.hashKey]?.S === hash && sort(sortOf(item)))
    .sort((a, b) => (forward ? 1 : -1) * byUtf8(sortOf(a), sortOf(b)));
  let start = 0;
  if (r.json.ExclusiveStartKey !== undefined) {
    const after = exactKeyOf(table, r.json.ExclusiveStartKey);
    const [startHash, startSort] = keyParts(table, r.json.ExclusiveStartKey);
    if (startHash !== hash) throw new TwinServiceError('ValidationException', 'The provided starting key is invalid');
    const index = matching.findIndex((item) => keyOf(table, item) === after);
    start =
      index >= 0
        ? index + 1
        : matching.findIndex((item) => (forward ? 1 : -1) * byUtf8(sortOf(item), startSort ?? '') > 0);
    if (start < 0) start = matching.length;
  }
  const items: Item[] = [];
  let bytes = 0;
  for (const item of matching.slice(start)) {
    if (typeof limit === 'number' && items.length >= limit) break;
    bytes += Buffer.byteLength(JSON.stringify(item));
    items.push(item);
    if (bytes >= MAX_PAGE_BYTES) break;
  }
  const more = start + items.length < matching.length;
  const last = items.at(-1);
  const keyNames = [table.hashKey, ...(table.sortKey === undefined ? [] : [table.sortKey])];
  return {
    Items: r.json.Select === 'COUNT' ? undefined : items,
    Count: items.length,
    ScannedCount: items.length,
    ...(more && last ? { LastEvaluatedKey: Object.fromEntries(keyNames.map((n) => [n, last[n]])) } : {}),
  };
}

export function createDynamoDbService(state: DynamoDbState): ServiceHandler {
  const actions: Record<string, (r: TwinRequest) => unknown> = {
    PutItem: (r) => {
      const table = state.table(r.region, r.json.TableName);
      const item = r.json.Item as Item | undefined;
      const key = keyOf(table, item);
      if (Buffer.byteLength(JSON.stringify(item)) > MAX_ITEM_BYTES)
        throw new TwinServiceError('ValidationException', 'Item size has exceeded the maximum allowed size');
      const old = table.items.get(key);
      table.items.set(key, structuredClone(item as Item));
      return r.json.ReturnValues === 'ALL_OLD' && old ? { Attributes: old } : {};
    },
    GetItem: (r) => {
      const table = state.table(r.region, r.json.TableName);
      const item = table.items.get(exactKeyOf(table, r.json.Key));
      return item ? { Item: item } : {};
    },
    DeleteItem: (r) => {
      const table = state.table(r.region, r.json.TableName);
      const key = exactKeyOf(table, r.json.Key);
      const old = table.items.get(key);
      table.items.delete(key);
      return r.json.ReturnValues === 'ALL_OLD' && old ? { Attributes: old } : {};
    },
    Query: (r) => query(state.table(r.region, r.json.TableName), r),
  };
  return (request) => {
    const action = Object.hasOwn(actions, request.action) ? actions[request.action] : undefined;
    if (!action) {
      return {
        ...jsonError(400, 'UnknownOperationException', `${request.action} is not supported by the local DynamoDB.`),
        contentType: CONTENT_TYPE,
      };
    }
    try {
      return jsonResponse(action(request), CONTENT_TYPE);
    } catch (error) {
      if (error instanceof TwinServiceError)
        return { ...jsonError(error.status, error.code, error.message), contentType: CONTENT_TYPE };
      throw error;
    }
  };
}
