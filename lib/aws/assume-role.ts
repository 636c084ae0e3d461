import { AssumeRoleCommand } from '@aws-sdk/client-sts';
import { createClients, stsClient, type Clients } from './clients.ts';

/** What reaching a DR account calls: its role, assumed through STS. */
export const REQUIRED_PERMISSIONS = ['sts:AssumeRole'] as const;

/** The DR account's role could not be assumed (missing, or its trust policy does not name ami-dr's role). */
export class DrAccountAccessError extends Error {
  override name = 'DrAccountAccessError';
}

/** Sessions are renewed this long before they expire, so a call never carries credentials about to lapse. */
const RENEW_MS = 5 * 60_000;
const SESSION_SECONDS = 3600;

const sessions = new WeakMap<Clients, Map<string, { clients: Clients; expiresAt: number }>>();

/**
 * Clients signed as a role in another account (one session per process and role, renewed before it expires),
 * talking to the same endpoints as `clients`. The session is named after ami-dr, so CloudTrail in the DR account
 * says who copied.
 */
export async function assumedClients(
  clients: Clients,
  roleArn: string,
  region: string,
  now: () => number = Date.now,
): Promise<Clients> {
  let byRole = sessions.get(clients);
  if (!byRole) sessions.set(clients, (byRole = new Map()));
  const cached = byRole.get(roleArn);
  if (cached && cached.expiresAt - RENEW_MS > now()) return cached.clients;
  let out;
  try {
    out = await stsClient(clients, region).send(
      new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: 'ami-dr', DurationSeconds: SESSION_SECONDS }),
    );
  } catch (error) {
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    throw new DrAccountAccessError(`cannot assume ${roleArn}: ${reason}`, { cause: error });
  }
  const c = out.Credentials;
  if (!c?.AccessKeyId || !c.SecretAccessKey)
    throw new DrAccountAccessError(`AssumeRole ${roleArn} returned no credentials`);
  const assumed = createClients({
    ...clients.options,
    credentials: { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken },
  });
  byRole.set(roleArn, { clients: assumed, expiresAt: c.Expiration?.getTime() ?? now() + SESSION_SECONDS * 1000 });
  return assumed;
}
