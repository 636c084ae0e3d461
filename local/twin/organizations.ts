import { TwinServiceError, jsonError, jsonResponse, type ServiceHandler, type TwinRequest } from './http.ts';
import { accessKeyIdOf, resolveIdentity, type CallerIdentity } from './identity.ts';

/**
 * AWS Organizations over JSON 1.1 (`AWSOrganizationsV20161128.<Action>`): the organization's tree (a root, OUs,
 * accounts with their state) and the calls ami-dr makes on it, answered as AWS answers them:
 * - ListAccounts, ListAccountsForParent and ListParents-like reads only from the management account (a member gets
 *   AccessDeniedException); a caller outside any organization gets AWSOrganizationsNotInUseException;
 *   DescribeOrganization from any account of it.
 * - ListAccountsForParent lists the accounts directly under a root or OU (not under its child OUs); an unknown
 *   parent is ParentNotFoundException. Pages of at most 20 with an opaque NextToken.
 * It also holds the member roles a StackSet would have deployed (`deployMemberRole`), whose trust STS AssumeRole
 * checks: the role must exist, trust the caller's account, and the caller be in the organization
 * (`aws:PrincipalOrgID`) and pass the ExternalId when the trust policy names one.
 */
export type OrgAccountState = 'ACTIVE' | 'SUSPENDED' | 'PENDING_CLOSURE' | 'CLOSED';

export interface OrgAccount {
  id: string;
  name: string;
  email: string;
  state: OrgAccountState;
  parentId: string;
  joinedAt: number;
}

export interface MemberRoleTrust {
  /** The account whose principals may assume it (the home account of ami-dr). */
  trustedAccount: string;
  /** `aws:PrincipalOrgID`: the caller must belong to this organization (default true). */
  requireOrganization?: boolean;
  /** `sts:ExternalId` the caller must pass, when set. */
  externalId?: string;
}

const MAX_PAGE = 20;

export class TwinOrganization {
  readonly rootId: string;
  readonly ous = new Map<string, { id: string; name: string; parentId: string }>();
  readonly accounts = new Map<string, OrgAccount>();
  /** account -> role name -> trust. */
  readonly roles = new Map<string, Map<string, MemberRoleTrust>>();
  private seq = 0;

  constructor(
    readonly managementAccountId: string,
    readonly id = 'o-a1b2c3d4e5',
    now = Date.now(),
  ) {
    this.rootId = `r-${id.slice(2, 6)}`;
    this.addAccount(managementAccountId, { name: 'management', parentId: this.rootId, joinedAt: now });
  }

  get arn(): string {
    return `arn:aws:organizations::${this.managementAccountId}:organization/${this.id}`;
  }

  addOu(name: string, parentId = this.rootId): string {
    const suffix = (++this.seq).toString(36).padStart(8, '0');
    const ouId = `ou-${this.rootId.slice(2)}-${suffix}`;
    this.ous.set(ouId, { id: ouId, name, parentId });
    return ouId;
  }

  addAccount(
    id: string,
    options: { name?: string; parentId?: string; state?: OrgAccountState; joinedAt?: number } = {},
  ): OrgAccount {
    const account: OrgAccount = {
      id,
      name: options.name ?? `account-${id}`,
      email: `aws+${id}@example.com`,
      state: options.state ?? 'ACTIVE',
      parentId: options.parentId ?? this.rootId,
      joinedAt: options.joinedAt ?? Date.now(),
    };
    this.accounts.set(id, account);
    return account;
  }

  /** What a StackSet instance of deploy/member-account.yml leaves in the account: the role and its trust. */
  deployMemberRole(account: string, roleName: string, trust: MemberRoleTrust): void {
    let roles = this.roles.get(account);
    if (!roles) this.roles.set(account, (roles = new Map()));
    roles.set(roleName, trust);
  }

  removeMemberRole(account: string, roleName: string): void {
    this.roles.get(account)?.delete(roleName);
  }

  contains(account: string): boolean {
    return this.accounts.has(account);
  }

  /**
   * Why STS refuses `caller` the role (undefined: allowed, or the role's account is not part of this organization,
   * so not modelled here). AWS answers every refusal alike: AccessDenied, not authorized to perform sts:AssumeRole.
   */
  assumeRoleDenial(caller: CallerIdentity, roleArn: string, externalId: string | undefined): string | undefined {
    const match = /^arn:aws[a-z-]*:iam::(\d{12}):role\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]+)$/.exec(roleArn);
    if (!match) return undefined;
    const [, account = '', roleName = ''] = match;
    if (!this.contains(account) || account === caller.accountId) return undefined;
    const trust = this.roles.get(account)?.get(roleName);
    const refused =
      !trust ||
      trust.trustedAccount !== caller.accountId ||
      ((trust.requireOrganization ?? true) && !this.contains(caller.accountId)) ||
      (trust.externalId !== undefined && trust.externalId !== externalId);
    return refused
      ? `User: ${caller.arn} is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`
      : undefined;
  }

  accountJson(a: OrgAccount): Record<string, unknown> {
    return {
      Id: a.id,
      Arn: `arn:aws:organizations::${this.managementAccountId}:account/${this.id}/${a.id}`,
      Email: a.email,
      Name: a.name,
      // Status is the older field (no CLOSED); State replaced it in 2025.
      Status: a.state === 'CLOSED' ? 'SUSPENDED' : a.state,
      State: a.state,
      JoinedMethod: 'CREATED',
      JoinedTimestamp: a.joinedAt / 1000,
    };
  }
}

export interface OrganizationsContext {
  /** The organization the twin's accounts belong to; undefined: none (AWSOrganizationsNotInUseException). */
  organization: () => TwinOrganization | undefined;
  accountId: string;
  identities?: Record<string, string>;
}

export function createOrganizationsService(ctx: OrganizationsContext): ServiceHandler {
  const callerOf = (request: TwinRequest): CallerIdentity => {
    const authorization = request.headers.authorization;
    return resolveIdentity(
      accessKeyIdOf(typeof authorization === 'string' ? authorization : undefined),
      ctx.accountId,
      ctx.identities,
    );
  };
  const page = (org: TwinOrganization, accounts: OrgAccount[], request: TwinRequest) => {
    const max = request.json.MaxResults === undefined ? MAX_PAGE : Number(request.json.MaxResults);
    if (!Number.isInteger(max) || max < 1 || max > MAX_PAGE)
      throw new TwinServiceError(
        'InvalidInputException',
        'You provided a value that does not match the required pattern.',
      );
    const token = request.json.NextToken;
    const start = typeof token === 'string' ? Number(Buffer.from(token, 'base64').toString('utf8')) : 0;
    if (!Number.isInteger(start) || start < 0)
      throw new TwinServiceError('InvalidInputException', 'The NextToken is not valid.');
    const sorted = [...accounts].sort((a, b) => a.id.localeCompare(b.id));
    const slice = sorted.slice(start, start + max);
    const next = start + max < sorted.length ? Buffer.from(String(start + max)).toString('base64') : undefined;
    return jsonResponse({ Accounts: slice.map((a) => org.accountJson(a)), ...(next ? { NextToken: next } : {}) });
  };
  /** The organization of the caller, who must be its management account for the List calls. */
  const orgOf = (request: TwinRequest, managementOnly: boolean): TwinOrganization => {
    const org = ctx.organization();
    const caller = callerOf(request);
    if (!org || !org.contains(caller.accountId))
      throw new TwinServiceError(
        'AWSOrganizationsNotInUseException',
        'Your account is not a member of an organization.',
      );
    if (managementOnly && caller.accountId !== org.managementAccountId)
      throw new TwinServiceError('AccessDeniedException', "You don't have permissions to access this resource.");
    return org;
  };
  const actions: Record<string, (request: TwinRequest) => ReturnType<ServiceHandler>> = {
    DescribeOrganization: (request) => {
      const org = orgOf(request, false);
      return jsonResponse({
        Organization: {
          Id: org.id,
          Arn: org.arn,
          FeatureSet: 'ALL',
          MasterAccountArn: `arn:aws:organizations::${org.managementAccountId}:account/${org.id}/${org.managementAccountId}`,
          MasterAccountId: org.managementAccountId,
          MasterAccountEmail: org.accounts.get(org.managementAccountId)?.email,
          AvailablePolicyTypes: [],
        },
      });
    },
    ListAccounts: (request) => {
      const org = orgOf(request, true);
      return page(org, [...org.accounts.values()], request);
    },
    ListAccountsForParent: (request) => {
      const org = orgOf(request, true);
      const parentId = request.json.ParentId;
      if (typeof parentId !== 'string' || !/^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$/.test(parentId))
        throw new TwinServiceError(
          'InvalidInputException',
          'You provided a value that does not match the required pattern.',
        );
      if (parentId !== org.rootId && !org.ous.has(parentId))
        throw new TwinServiceError(
          'ParentNotFoundException',
          "We can't find a root or OU with the ParentId that you specified.",
        );
      return page(
        org,
        [...org.accounts.values()].filter((a) => a.parentId === parentId),
        request,
      );
    },
  };
  return async (request) => {
    const action = actions[request.action];
    if (!action)
      return jsonError(400, 'UnknownOperationException', `The twin does not serve Organizations ${request.action}.`);
    try {
      return await action(request);
    } catch (error) {
      if (error instanceof TwinServiceError) return jsonError(error.status, error.code, error.message);
      throw error;
    }
  };
}
