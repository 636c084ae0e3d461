import { escapeXml, type TwinResponse } from './http.ts';

/**
 * EC2's XML dialect, as the SDK's EC2 protocol parser reads it: the response element is `<ActionResponse>` in the
 * 2016-11-15 namespace with a `<requestId>`; element names are the API model's lowerCamel `locationName`s; lists
 * are `<nameSet><item>…</item></nameSet>` (the `Set` is part of the name the caller gives); booleans are
 * `true`/`false`; times are ISO 8601. Errors use a different envelope (`<Response><Errors>`), HTTP 400, or 503
 * for throttling.
 */
export const EC2_XMLNS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

export type XmlValue = string | number | boolean | Date | null | undefined | XmlElements | XmlValue[];
export interface XmlElements {
  [element: string]: XmlValue;
}

/** Elements in key order; `undefined`/`null` are left out, arrays become `<item>` children. */
export function toEc2Xml(elements: XmlElements): string {
  const parts: string[] = [];
  writeElements(elements, parts);
  return parts.join('');
}

// Built into one array of parts: a DescribeImages page of 1,000 images is about a megabyte of XML.
function writeElements(elements: XmlElements, parts: string[]): void {
  for (const name in elements) writeElement(name, elements[name], parts);
}

function writeElement(name: string, value: XmlValue, parts: string[]): void {
  if (value === undefined || value === null) return;
  if (Array.isArray(value)) {
    parts.push(`<${name}>`);
    for (const item of value) writeElement('item', item, parts);
    parts.push(`</${name}>`);
  } else if (value instanceof Date) {
    parts.push(`<${name}>${value.toISOString()}</${name}>`);
  } else if (typeof value === 'object') {
    parts.push(`<${name}>`);
    writeElements(value, parts);
    parts.push(`</${name}>`);
  } else {
    const text = String(value);
    parts.push(`<${name}>${NEEDS_ESCAPE.test(text) ? escapeXml(text) : text}</${name}>`);
  }
}

const NEEDS_ESCAPE = /[<>&'"]/;

export function ec2Response(action: string, requestId: string, body: XmlElements): TwinResponse {
  return {
    status: 200,
    contentType: 'text/xml;charset=UTF-8',
    body: `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_XMLNS}"><requestId>${requestId}</requestId>${toEc2Xml(body)}</${action}Response>`,
  };
}

export function ec2ErrorResponse(code: string, message: string, requestId: string, status = 400): TwinResponse {
  return {
    status,
    contentType: 'text/xml;charset=UTF-8',
    body:
      `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${escapeXml(code)}</Code>` +
      `<Message>${escapeXml(message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`,
  };
}

/** `{ key, value }` items of a `tagSet`. */
export function tagSet(tags: Map<string, string>): XmlElements[] | undefined {
  if (tags.size === 0) return undefined;
  return [...tags].map(([key, value]) => ({ key, value }));
}
