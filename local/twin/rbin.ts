import type { ServiceHandler, TwinRequest, TwinResponse } from './http.ts';

/**
 * Recycle Bin (`rbin`, REST-JSON): retention rules per region, enough for ami-dr to read which deleted AMIs and
 * snapshots are retained and for how long. CreateRule (`POST /rules`), GetRule (`GET /rules/{id}`), ListRules
 * (`POST /list-rules`, filtered by resource type, resource tags, exclusion tags and lock state, paginated).
 * Rules are `available` at once; retention itself (what the bin holds) is not modelled.
 */

interface Tag {
  ResourceTagKey: string;
  ResourceTagValue?: string;
}

interface Rule {
  Identifier: string;
  Description?: string;
  ResourceType: 'EBS_SNAPSHOT' | 'EC2_IMAGE';
  RetentionPeriod: { RetentionPeriodValue: number; RetentionPeriodUnit: 'DAYS' };
  ResourceTags: Tag[];
  ExcludeResourceTags: Tag[];
  Status: 'available';
  LockState: 'locked' | 'pending_unlock' | 'unlocked';
  RuleArn: string;
}

const RESOURCE_TYPES = new Set(['EBS_SNAPSHOT', 'EC2_IMAGE']);

class RbinError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

const invalid = (message: string): RbinError => new RbinError('ValidationException', message, 400);

export function createRbinService(options: { accountId: string }): ServiceHandler {
  const regions = new Map<string, Map<string, Rule>>();
  let next = 0;
  const rulesOf = (region: string): Map<string, Rule> => {
    let rules = regions.get(region);
    if (!rules) regions.set(region, (rules = new Map()));
    return rules;
  };

  const routes: { method: string; path: RegExp; run: (r: TwinRequest, m: RegExpExecArray) => unknown }[] = [
    { method: 'POST', path: /^\/rules$/, run: (r) => createRule(r, rulesOf(r.region), options.accountId, ++next) },
    {
      method: 'GET',
      path: /^\/rules\/([^/]+)$/,
      run: (r, m) => {
        const rule = rulesOf(r.region).get(m[1] ?? '');
        if (!rule) throw new RbinError('ResourceNotFoundException', `Rule ${m[1]} does not exist.`, 404);
        return rule;
      },
    },
    { method: 'POST', path: /^\/list-rules$/, run: (r) => listRules(r.json, rulesOf(r.region)) },
  ];

  return (request): TwinResponse => {
    try {
      for (const route of routes) {
        const m = route.path.exec(request.path);
        if (m && route.method === request.method) return json(200, route.run(request, m));
      }
      throw new RbinError('UnknownOperationException', `No Recycle Bin operation at ${request.action}.`, 404);
    } catch (error) {
      if (!(error instanceof RbinError)) throw error;
      return { ...json(error.status, { message: error.message }), headers: { 'x-amzn-errortype': error.code } };
    }
  };
}

function json(status: number, document: unknown): TwinResponse {
  return { status, contentType: 'application/json', body: JSON.stringify(document) };
}

function createRule(request: TwinRequest, rules: Map<string, Rule>, accountId: string, n: number): Rule {
  const body = request.json as Partial<Rule> & { LockConfiguration?: unknown };
  if (!RESOURCE_TYPES.has(String(body.ResourceType))) throw invalid('ResourceType must be EBS_SNAPSHOT or EC2_IMAGE.');
  const days = body.RetentionPeriod?.RetentionPeriodValue;
  if (!Number.isInteger(days) || (days as number) < 1 || (days as number) > 365)
    throw invalid('RetentionPeriodValue must be a whole number of days from 1 to 365.');
  const resourceTags = tags(body.ResourceTags);
  const excludeTags = tags(body.ExcludeResourceTags);
  if (resourceTags.length > 0 && excludeTags.length > 0)
    throw invalid('A rule has either resource tags (tag-level) or exclusion tags (Region-level), not both.');
  const id = `r${n.toString(36).padStart(10, '0')}`;
  const rule: Rule = {
    Identifier: id,
    ...(body.Description ? { Description: body.Description } : {}),
    ResourceType: body.ResourceType as Rule['ResourceType'],
    RetentionPeriod: { RetentionPeriodValue: days as number, RetentionPeriodUnit: 'DAYS' },
    ResourceTags: resourceTags,
    ExcludeResourceTags: excludeTags,
    Status: 'available',
    LockState: body.LockConfiguration ? 'locked' : 'unlocked',
    RuleArn: `arn:aws:rbin:${request.region}:${accountId}:rule/${id}`,
  };
  rules.set(id, rule);
  return rule;
}

function tags(value: unknown): Tag[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid('Tags must be a list.');
  return value.map((t: Partial<Tag>) => {
    if (!t.ResourceTagKey) throw invalid('ResourceTagKey is required.');
    return {
      ResourceTagKey: t.ResourceTagKey,
      ...(t.ResourceTagValue ? { ResourceTagValue: t.ResourceTagValue } : {}),
    };
  });
}

const sameTags = (want: Tag[], have: Tag[]): boolean =>
  want.every((w) =>
    have.some((h) => h.ResourceTagKey === w.ResourceTagKey && h.ResourceTagValue === w.ResourceTagValue),
  );

function listRules(body: Record<string, unknown>, rules: Map<string, Rule>): unknown {
  if (!RESOURCE_TYPES.has(String(body.ResourceType)))
    throw invalid('ResourceType is required: EBS_SNAPSHOT or EC2_IMAGE.');
  const wantTags = tags(body.ResourceTags);
  const wantExclude = tags(body.ExcludeResourceTags);
  const max = typeof body.MaxResults === 'number' ? body.MaxResults : 1000;
  const start = typeof body.NextToken === 'string' ? Number(body.NextToken) : 0;
  const matching = [...rules.values()].filter(
    (r) =>
      r.ResourceType === body.ResourceType &&
      (body.LockState === undefined || r.LockState === body.LockState) &&
      sameTags(wantTags, r.ResourceTags) &&
      sameTags(wantExclude, r.ExcludeResourceTags),
  );
  const page = matching.slice(start, start + max);
  return {
    Rules: page.map((r) => ({
      Identifier: r.Identifier,
      ...(r.Description ? { Description: r.Description } : {}),
      RetentionPeriod: r.RetentionPeriod,
      LockState: r.LockState,
      RuleArn: r.RuleArn,
    })),
    ...(start + max < matching.length ? { NextToken: String(start + max) } : {}),
  };
}
