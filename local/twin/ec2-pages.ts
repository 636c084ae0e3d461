import { TwinServiceError } from './http.ts';

/**
 * Describe* pagination. The first call takes a snapshot of the matching ids; each NextToken names the rest of
 * that snapshot, so pages never skip or repeat items while the inventory changes underneath (resources removed
 * meanwhile are left out of later pages). Tokens are single use, like a cursor.
 */
const MAX_OPEN_CURSORS = 10_000;

export class Cursors {
  private readonly open = new Map<string, { ids: string[]; offset: number }>();
  private counter = 0;

  page<T>(
    token: string | undefined,
    pageSize: number | undefined,
    match: () => string[],
    lookup: (id: string) => T | undefined,
  ): { items: T[]; nextToken?: string } {
    let cursor: { ids: string[]; offset: number };
    if (token) {
      const found = this.open.get(token);
      if (!found)
        throw new TwinServiceError(
          'InvalidPaginationToken',
          `The pagination token ${token} is invalid or has expired.`,
        );
      this.open.delete(token);
      cursor = found;
    } else {
      cursor = { ids: match(), offset: 0 };
    }
    const end = pageSize === undefined ? cursor.ids.length : cursor.offset + pageSize;
    const items: T[] = [];
    for (let i = cursor.offset; i < Math.min(end, cursor.ids.length); i++) {
      const item = lookup(cursor.ids[i] as string);
      if (item !== undefined) items.push(item);
    }
    if (end >= cursor.ids.length) return { items };
    const nextToken = Buffer.from(`cursor:${++this.counter}:${end}`).toString('base64url');
    this.open.set(nextToken, { ids: cursor.ids, offset: end });
    if (this.open.size > MAX_OPEN_CURSORS) this.open.delete(this.open.keys().next().value as string);
    return { items, nextToken };
  }
}

/** MaxResults within EC2's bounds for the action, or undefined (all results). */
export function pageSize(value: number | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (value < min || value > max) {
    throw new TwinServiceError(
      'InvalidParameterValue',
      `Value ( ${value} ) for parameter maxResults is invalid. Expecting a value between ${min} and ${max}.`,
    );
  }
  return value;
}
