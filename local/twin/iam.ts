/**
 * IAM for the twin: which calls a caller's role allows. A small evaluator of the identity-policy subset ami-dr's
 * roles use (Allow and Deny statements, Action/NotAction and Resource wildcards, and the condition operators
 * StringEquals, StringNotEquals, StringLike, StringNotLike, ArnLike, Bool, Null, with ForAllValues:/ForAnyValue:
 * and ...IfExists), evaluated as AWS does: an explicit Deny wins, then any Allow, else the request is implicitly denied.
 *
 * Callers whose access key maps to no role (tests' `test` keys, a builder's session) are not restricted: the twin
 * models what AWS refuses ami-dr's own roles, not a whole account's IAM.
 */

export type ConditionValue = string | number | boolean | (string | number | boolean)[];

export interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny' | string;
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  Condition?: Record<string, Record<string, ConditionValue>>;
}

/** One authorization AWS makes: an action on a resource, with the request's condition keys. */
export interface AuthRequest {
  /** `service:Action`, e.g. `ec2:CopyImage`. */
  action: string;
  /** The resource's ARN, or `*` for actions without resource-level permissions. */
  resource: string;
  /** Condition keys (case-insensitive): `aws:ResourceTag/ami-dr:role`, `kms:ViaService`, `aws:TagKeys`, ... */
  context?: Record<string, string | string[] | undefined>;
}

const LOG_LIMIT = 100_000;

export type Decision = 'Allow' | 'ExplicitDeny' | 'ImplicitDeny';

export function evaluate(statements: readonly PolicyStatement[], request: AuthRequest): Decision {
  const context = new Map(
    Object.entries(request.context ?? {})
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [k.toLowerCase(), [v!].flat()]),
  );
  let allowed = false;
  for (const statement of statements) {
    if (!applies(statement, request, context)) continue;
    if (statement.Effect === 'Deny') return 'ExplicitDeny';
    if (statement.Effect === 'Allow') allowed = true;
  }
  return allowed ? 'Allow' : 'ImplicitDeny';
}

function applies(statement: PolicyStatement, request: AuthRequest, context: Map<string, string[]>): boolean {
  const actionMatches = (patterns: string | string[]) =>
    [patterns].flat().some((p) => wildcard(p, true).test(request.action));
  if (statement.Action !== undefined && !actionMatches(statement.Action)) return false;
  if (statement.NotAction !== undefined && actionMatches(statement.NotAction)) return false;
  if (statement.Action === undefined && statement.NotAction === undefined) return false;
  const resources = [statement.Resource ?? []].flat();
  if (!resources.some((r) => wildcard(r, false).test(request.resource))) return false;
  return Object.entries(statement.Condition ?? {}).every(([operator, keys]) =>
    Object.entries(keys).every(([key, values]) => condition(operator, context.get(key.toLowerCase()), values)),
  );
}

/** IAM's `*` and `?`; actions compare case-insensitively, resources (ARNs) case-sensitively. */
function wildcard(pattern: string, ignoreCase: boolean): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`, ignoreCase ? 'is' : 's');
}

const MATCHERS: Record<string, (actual: string, wanted: string) => boolean> = {
  StringEquals: (a, w) => a === w,
  StringEqualsIgnoreCase: (a, w) => a.toLowerCase() === w.toLowerCase(),
  StringLike: (a, w) => wildcard(w, false).test(a),
  ArnEquals: (a, w) => a === w,
  ArnLike: (a, w) => wildcard(w, false).test(a),
  Bool: (a, w) => a.toLowerCase() === w.toLowerCase(),
};
const NEGATED: Record<string, string> = {
  StringNotEquals: 'StringEquals',
  StringNotEqualsIgnoreCase: 'StringEqualsIgnoreCase',
  StringNotLike: 'StringLike',
  ArnNotEquals: 'ArnEquals',
  ArnNotLike: 'ArnLike',
};

function condition(operator: string, actual: string[] | undefined, wanted: ConditionValue): boolean {
  // Null: whether the key is absent (`true`) or present (`false`) in the request (IAM User Guide: condition operators).
  if (operator === 'Null')
    return [wanted]
      .flat()
      .map(String)
      .includes(String(!actual || actual.length === 0));
  let op = operator;
  let set: 'all' | 'any' | undefined;
  if (op.startsWith('ForAllValues:')) [set, op] = ['all', op.slice('ForAllValues:'.length)];
  else if (op.startsWith('ForAnyValue:')) [set, op] = ['any', op.slice('ForAnyValue:'.length)];
  const ifExists = op.endsWith('IfExists');
  if (ifExists) op = op.slice(0, -'IfExists'.length);
  const negatedOf = NEGATED[op];
  const match = MATCHERS[negatedOf ?? op];
  if (!match) throw new Error(`the twin's IAM evaluator does not support the condition operator ${operator}`);
  const values = [wanted].flat().map(String);
  const hit = (a: string) => values.some((w) => match(a, w));
  if (set === 'all') {
    // True for a missing or empty key, as AWS evaluates ForAllValues.
    if (!actual || actual.length === 0) return true;
    return actual.every((a) => (negatedOf ? !hit(a) : hit(a)));
  }
  if (!actual || actual.length === 0) return ifExists || (negatedOf !== undefined && set === undefined);
  if (set === 'any') return actual.some((a) => (negatedOf ? !hit(a) : hit(a)));
  return negatedOf ? !actual.some(hit) : actual.some(hit);
}

/** A role the twin knows by access key id: its session's ARN and its identity policy. */
export interface IamPrincipal {
  accessKeyId: string;
  /** The assumed-role session ARN (`arn:aws:sts::<account>:assumed-role/<role>/<session>`). */
  arn: string;
  statements: PolicyStatement[];
}

/**
 * A role defined in an account whose IAM the twin models (a DR account's roles, from its template): STS hands out
 * sessions for it only to callers its trust policy names, and each session is held to its identity policy.
 */
export interface IamRole {
  arn: string;
  statements: PolicyStatement[];
  /** The trust policy's statements (`Principal: { AWS: ... }`, action `sts:AssumeRole`). */
  trust: (PolicyStatement & { Principal?: '*' | { AWS?: string | string[] } })[];
}

/** The roles callers sign as; `identities` is the access-key → ARN map the rest of the twin resolves callers with. */
export class Iam {
  private readonly principals = new Map<string, IamPrincipal>();
  private readonly definedRoles = new Map<string, IamRole>();
  private readonly modelledAccounts = new Set<string>();
  /** Every request evaluated for a caller with a role, in order, with the decision (what a test asserts on). */
  readonly log: { accessKeyId: string; request: AuthRequest; decision: Decision }[] = [];

  constructor(readonly identities: Record<string, string>) {}

  attach(principal: IamPrincipal): void {
    this.principals.set(principal.accessKeyId, principal);
    this.identities[principal.accessKeyId] = principal.arn;
  }

  /** From now on, AssumeRole into `accountId` succeeds only for roles defined with `defineRole`. */
  modelAccount(accountId: string): void {
    this.modelledAccounts.add(accountId);
  }

  models(accountId: string): boolean {
    return this.modelledAccounts.has(accountId);
  }

  defineRole(role: IamRole): void {
    this.modelledAccounts.add(role.arn.split(':')[4] ?? '');
    this.definedRoles.set(role.arn, role);
  }

  removeRole(arn: string): void {
    this.definedRoles.delete(arn);
  }

  role(arn: string): IamRole | undefined {
    return this.definedRoles.get(arn);
  }

  principal(accessKeyId: string): IamPrincipal | undefined {
    return this.principals.get(accessKeyId);
  }

  roles(): IamPrincipal[] {
    return [...this.principals.values()];
  }

  /** The first request the caller's role does not allow, or undefined (also for callers with no role). */
  denied(accessKeyId: string, requests: readonly AuthRequest[]): { request: AuthRequest; arn: string } | undefined {
    const principal = this.principals.get(accessKeyId);
    if (!principal) return undefined;
    for (const request of requests) {
      const decision = evaluate(principal.statements, request);
      this.log.push({ accessKeyId, request, decision });
      if (this.log.length > LOG_LIMIT) this.log.splice(0, this.log.length - LOG_LIMIT);
      if (decision !== 'Allow') return { request, arn: principal.arn };
    }
    return undefined;
  }

  /** Whether one request is allowed (true for callers with no role). */
  allows(accessKeyId: string, request: AuthRequest): boolean {
    return this.denied(accessKeyId, [request]) === undefined;
  }
}

/** AWS's wording of an identity-policy denial (the service decides the error code around it). */
export function denialMessage(arn: string, request: AuthRequest): string {
  return `User: ${arn} is not authorized to perform: ${request.action} on resource: ${request.resource} because no identity-based policy allows the ${request.action} action`;
}
