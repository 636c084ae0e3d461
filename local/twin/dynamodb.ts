import { jsonResponse, TwinServiceError, jsonError, type ServiceHandler, type TwinRequest } from './http.ts';

/**
 * DynamoDB on the twin, as much as ami-dr uses: tables per region with a string hash key, and PutItem, GetItem and
 * DeleteItem (`ReturnValues: ALL_OLD`) over the JSON 1.0 protocol. Items keep DynamoDB's attribute-value shape
 * (`{ S: '...' }`, `{ N: '1' }`) as sent. TTL is not enforced: expired items stay, as they may on AWS for a while.
 */
type AttributeValue = Record<string, unknown>;
type Item = Record<string, AttributeValue>;

interface Table {
  name: string;
  region: string;
  hashKey: string;
  items: Map<string, Item>;
}

const CONTENT_TYPE = 'application/x-amz-json-1.0';
/** DynamoDB's item size limit. */
const MAX_ITEM_BYTES = 400 * 1024;

export class DynamoDbState {
  private readonly tables = new Map<string, Table>();

  constructor(private readonly accountId: string) {}

  /** Creates a table (idempotent) with a string hash key. */
  createTable(region: string, name: string, hashKey: string): void {
    const id = `${region}/${name}`;
    if (!this.tables.has(id)) this.tables.set(id, { name, region, hashKey, items: new Map() });
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

function keyOf(table: Table, key: unknown): string {
  const value = (key as Item | undefined)?.[table.hashKey]?.S;
  if (typeof value !== 'string' || value.length === 0) {
    throw new TwinServiceError('ValidationException', 'The provided key element does not match the schema');
  }
  return value;
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
      const item = table.items.get(keyOf(table, r.json.Key));
      return item ? { Item: item } : {};
    },
    DeleteItem: (r) => {
      const table = state.table(r.region, r.json.TableName);
      const key = keyOf(table, r.json.Key);
      const old = table.items.get(key);
      table.items.delete(key);
      return r.json.ReturnValues === 'ALL_OLD' && old ? { Attributes: old } : {};
    },
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
