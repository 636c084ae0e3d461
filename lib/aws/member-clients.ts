import { AssumeRoleCommand } from '@aws-sdk/client-sts';
import { isAwsError } from '../domain/errors.ts';
import {
  MEMBER_ROLE_MISSING_ERROR,
  MEMBER_SESSION_NAME,
  memberRoleArn,
  reachesMembers,
} from '../domain/organization.ts';
import type { Policy } from '../domain/policy.ts';
import { createClients, stsClient, type Clients } from './clients.ts';

/**
 * Clients of a member account: STS AssumeRole into its ami-dr-member role (ExternalId when configured, session
 * `ami-dr`), then the same createClients with those credentials. One session per account, reused until shortly
 * before it expires, so a run over hundreds of images assumes each role once.
 */
export const REQUIRED_PERMISSIONS = ['sts:AssumeRole'] as const;

/** The member's role cannot be assumed: not deployed there, or its trust policy refuses (AccessDenied). */
export class MemberRoleMissingError extends Error {
  override name = MEMBER_ROLE_MISSING_ERROR;
  constructor(
    readonly account: string,
    readonly roleArn: string,
    options?: { cause?: unknown },
  ) {
    super(
      `account ${account}: cannot assume ${roleArn} (is the member template deployed there, trusting this account?)`,
      options,
    );
  }
}

export interface MemberClientsOptions {
  /** The home account's clients: they call STS, and their endpoint and retry settings carry over. */
  home: Clients;
  homeAccountId: string;
  /** The region whose STS endpoint is called. */
  region: string;
  roleArnOf: (account: string) => string;
  externalId?: string;
  /** Epoch ms; default real time (sessions are reused until 5 minutes before they expire). */
  now?: () => number;
  durationSeconds?: number;
}

/** Resolves an account to its clients: the home account's own, or a member's through its role. */
export type ClientsFor = (account: string) => Promise<Clients>;

const RENEW_BEFORE_MS = 5 * 60_000;

export function memberClients(options: MemberClientsOptions): ClientsFor {
  const now = options.now ?? Date.now;
  const sessions = new Map<string, { clients: Clients; expires: number }>();
  // Units of one account starting side by side share one AssumeRole (and one refusal).
  const assuming = new Map<string, Promise<Clients>>();
  const assume = async (account: string): Promise<Clients> => {
    const roleArn = options.roleArnOf(account);
    let out;
    try {
      out = await stsClient(options.home, options.region).send(
        new AssumeRoleCommand({
          RoleArn: roleArn,
          RoleSessionName: MEMBER_SESSION_NAME,
          DurationSeconds: options.durationSeconds ?? 3600,
          ...(options.externalId ? { ExternalId: options.externalId } : {}),
        }),
      );
    } catch (error) {
      if (isAwsError(error, 'AccessDenied', 'AccessDeniedException'))
        throw new MemberRoleMissingError(account, roleArn, { cause: error });
      throw error;
    }
    const c = out.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error(`AssumeRole of ${roleArn} returned no credentials`);
    const clients = createClients({
      ...options.home.options,
      credentials: { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken },
    });
    sessions.set(account, { clients, expires: c.Expiration?.getTime() ?? now() + 3_600_000 });
    return clients;
  };
  return async (account) => {
    if (account === options.homeAccountId) return options.home;
    const cached = sessions.get(account);
    if (cached && cached.expires - RENEW_BEFORE_MS > now()) return cached.clients;
    let pending = assuming.get(account);
    if (!pending) {
      pending = assume(account).finally(() => assuming.delete(account));
      assuming.set(account, pending);
    }
    return pending;
  };
}

/**
 * A Lambda's member clients for the policy (undefined when it reaches no member): sessions made with its own
 * role's clients in its own region, kept for the warm Lambda's next invocations. Inputs naming no account use the
 * home clients, so no home id is needed unless the home account is named too (the scheduled units).
 */
export function policyMemberClients(
  home: Clients,
  policy: Readonly<Policy>,
  homeAccountId = '',
): ClientsFor | undefined {
  if (!reachesMembers(policy)) return undefined;
  return memberClients({
    home,
    homeAccountId,
    region: process.env.AWS_REGION ?? policy.regions.sources[0] ?? 'us-east-1',
    roleArnOf: (account) => memberRoleArn(policy, account, process.env.AWS_PARTITION),
    externalId: policy.organization?.externalId,
  });
}

/**
 * Which forwarded events are a member's: a listed account, or with `organization`, any other account (only the
 * organization's accounts can put events on the bus, and only those the member StackSet reaches forward them).
 */
export function memberTest(
  policy: Readonly<Policy>,
  homeAccountId: string,
): ((account: string) => boolean) | undefined {
  if (!reachesMembers(policy)) return undefined;
  const listed = new Set(policy.accounts ?? []);
  return (account) => account !== homeAccountId && (policy.organization !== undefined || listed.has(account));
}
