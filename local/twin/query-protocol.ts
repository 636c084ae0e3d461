import { escapeXml, TwinServiceError, type ServiceHandler, type TwinRequest, type TwinResponse } from './http.ts';

/**
 * The awsQuery protocol (STS, SNS, Auto Scaling): form-encoded requests, XML responses wrapped in
 * `<XResponse><XResult>…</XResult><ResponseMetadata>` and errors as `<ErrorResponse><Error>`. Lists arrive as
 * `Name.member.N`; EC2's dialect drops the `member`, so readers take the prefix they are given.
 */
export type XmlValue = string | number | boolean | Date | undefined | null | XmlNode | XmlValue[];
export interface XmlNode {
  [element: string]: XmlValue;
}

/** Serializes a plain object as XML elements; arrays become repeated `itemName` children of the element. */
export function toXml(node: XmlNode, itemName = 'member'): string {
  let out = '';
  for (const [name, value] of Object.entries(node)) out += element(name, value, itemName);
  return out;
}

function element(name: string, value: XmlValue, itemName: string): string {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) {
    return `<${name}>${value.map((v) => element(itemName, v, itemName)).join('')}</${name}>`;
  }
  if (value instanceof Date) return `<${name}>${value.toISOString()}</${name}>`;
  if (typeof value === 'object') return `<${name}>${toXml(value, itemName)}</${name}>`;
  return `<${name}>${escapeXml(String(value))}</${name}>`;
}

export function queryResponse(
  action: string,
  xmlns: string,
  result: XmlNode | undefined,
  requestId: string,
): TwinResponse {
  const body =
    `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${xmlns}">` +
    (result ? `<${action}Result>${toXml(result)}</${action}Result>` : '') +
    `<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`;
  return { status: 200, contentType: 'text/xml', body };
}

export function queryError(
  status: number,
  code: string,
  message: string,
  requestId: string,
  xmlns?: string,
): TwinResponse {
  const type = status >= 500 ? 'Receiver' : 'Sender';
  const body =
    `<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse${xmlns ? ` xmlns="${xmlns}"` : ''}><Error><Type>${type}</Type>` +
    `<Code>${escapeXml(code)}</Code><Message>${escapeXml(message)}</Message></Error>` +
    `<RequestId>${requestId}</RequestId></ErrorResponse>`;
  return { status, contentType: 'text/xml', body };
}

export type QueryAction = (request: TwinRequest) => TwinResponse;

/**
 * An awsQuery service from its table of actions: an action it does not have is `InvalidAction`, and a
 * TwinServiceError thrown by one becomes the `<ErrorResponse>`.
 */
export function queryService(xmlns: string, actions: Record<string, QueryAction>): ServiceHandler {
  return (request) => {
    // Own properties only: `toString` and the like are not actions.
    const action = Object.hasOwn(actions, request.action) ? actions[request.action] : undefined;
    if (!action)
      return queryError(
        400,
        'InvalidAction',
        `The action ${request.action || '(none)'} is not valid for this web service.`,
        request.requestId,
        xmlns,
      );
    try {
      return action(request);
    } catch (error) {
      if (error instanceof TwinServiceError)
        return queryError(error.status, error.code, error.message, request.requestId, xmlns);
      throw error;
    }
  };
}

/** `Prefix.1`, `Prefix.2`, … (EC2) or, with `.member`, `Prefix.member.1`, … (awsQuery), in index order. */
export function listParam(params: Record<string, string>, prefix: string): string[] {
  const values: Array<[number, string]> = [];
  const head = `${prefix}.`;
  for (const [key, value] of Object.entries(params)) {
    if (!key.startsWith(head)) continue;
    const rest = key.slice(head.length);
    if (/^\d+$/.test(rest)) values.push([Number(rest), value]);
  }
  return values.sort((a, b) => a[0] - b[0]).map(([, v]) => v);
}

/** Indexes N of `Prefix.N.<anything>`, sorted: the entries of a list of structures. */
export function structIndexes(params: Record<string, string>, prefix: string): number[] {
  const head = `${prefix}.`;
  const indexes = new Set<number>();
  for (const key of Object.keys(params)) {
    if (!key.startsWith(head)) continue;
    const n = /^(\d+)\./.exec(key.slice(head.length));
    if (n) indexes.add(Number(n[1]));
  }
  return [...indexes].sort((a, b) => a - b);
}

/** EC2-style `Filter.N.Name` / `Filter.N.Value.M` as name -> values. */
export function filterParams(params: Record<string, string>, prefix = 'Filter'): Map<string, string[]> {
  const filters = new Map<string, string[]>();
  for (const n of structIndexes(params, prefix)) {
    const name = params[`${prefix}.${n}.Name`];
    if (name === undefined) continue;
    filters.set(name, [...(filters.get(name) ?? []), ...listParam(params, `${prefix}.${n}.Value`)]);
  }
  return filters;
}

/**
 * Opaque page tokens: the offset into a stable, sorted listing, tied to the listing they came from so that a
 * token from another call is rejected rather than silently misread.
 */
export function encodeToken(scope: string, offset: number): string {
  return Buffer.from(JSON.stringify({ s: scope, o: offset })).toString('base64url');
}

export function decodeToken(scope: string, token: string | undefined): number | undefined {
  if (token === undefined || token === '') return 0;
  try {
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { s?: unknown; o?: unknown };
    if (parsed.s !== scope || typeof parsed.o !== 'number' || !Number.isInteger(parsed.o) || parsed.o < 0)
      return undefined;
    return parsed.o;
  } catch {
    return undefined;
  }
}

/** One page of `items` from `offset`; `next` is the offset of the following page, if any. */
export function page<T>(items: readonly T[], offset: number, size: number): { items: T[]; next?: number } {
  const slice = items.slice(offset, offset + size);
  const next = offset + size < items.length ? offset + size : undefined;
  return next === undefined ? { items: slice } : { items: slice, next };
}
