import {
  CreateGrantCommand,
  GetKeyPolicyCommand,
  ListGrantsCommand,
  RetireGrantCommand,
  type GrantOperation,
  type KMSClient,
} from '@aws-sdk/client-kms';
import type { LaunchPermission } from '../domain/image.ts';
import {
  KEY_ACCESS_OPERATIONS,
  consumersOf,
  grantName,
  granteeOf,
  planGrants,
  type KeyAccess,
  type KeyGrant,
} from '../domain/key-access.ts';
import { describeKey } from './account.ts';

/** What sharing a DR key with the copies' consumers calls; the grants are for other accounts, not AWS resources. */
export const REQUIRED_PERMISSIONS = [
  'kms:GetKeyPolicy',
  'kms:ListGrants',
  'kms:CreateGrant',
  'kms:RetireGrant',
] as const;

/** The key's policy and grants (every page), by key ARN (grants name keys by id or ARN, never by alias). */
export async function readKeyAccess(kms: KMSClient, keyArn: string): Promise<KeyAccess> {
  const grants = await listKeyGrants(kms, keyArn);
  const policy = (await kms.send(new GetKeyPolicyCommand({ KeyId: keyArn, PolicyName: 'default' }))).Policy;
  return { keyArn, ...(policy ? { policy } : {}), grants };
}

export async function listKeyGrants(kms: KMSClient, keyArn: string): Promise<KeyGrant[]> {
  const grants: KeyGrant[] = [];
  let marker: string | undefined;
  do {
    const page = await kms.send(new ListGrantsCommand({ KeyId: keyArn, Marker: marker }));
    for (const g of page.Grants ?? [])
      grants.push({
        grantId: g.GrantId ?? '',
        ...(g.Name ? { name: g.Name } : {}),
        granteePrincipal: g.GranteePrincipal ?? '',
        operations: g.Operations ?? [],
      });
    marker = page.Truncated ? page.NextMarker : undefined;
  } while (marker);
  return grants;
}

/** Lets the account use the key for launching (and copying) a shared image; named so it is found again. */
export async function grantKeyToAccount(kms: KMSClient, keyArn: string, account: string): Promise<string> {
  const out = await kms.send(
    new CreateGrantCommand({
      KeyId: keyArn,
      GranteePrincipal: granteeOf(account),
      Operations: [...KEY_ACCESS_OPERATIONS] as GrantOperation[],
      Name: grantName(account),
    }),
  );
  return out.GrantId ?? '';
}

export async function retireKeyGrant(kms: KMSClient, keyArn: string, grantId: string): Promise<void> {
  await kms.send(new RetireGrantCommand({ KeyId: keyArn, GrantId: grantId }));
}

export class KeyNotFoundError extends Error {
  override name = 'KeyNotFoundError';
}

/**
 * Grants the key (id, alias or ARN) to every account among the launch permissions that holds no grant for it yet;
 * returns the accounts granted. Idempotent: the grants are found again by name and grantee.
 */
export async function grantKeyToConsumers(
  kms: KMSClient,
  keyRef: string,
  permissions: readonly LaunchPermission[],
): Promise<string[]> {
  const accounts = consumersOf(permissions).flatMap((c) => (c.kind === 'account' ? [c.id] : []));
  if (accounts.length === 0) return [];
  const key = await describeKey(kms, keyRef);
  if (!key) throw new KeyNotFoundError(`DR key ${keyRef} does not exist`);
  // The key policy is readiness's to read; here only the grants decide, and an extra grant is harmless.
  const { create } = planGrants({ keyArn: key.arn, grants: await listKeyGrants(kms, key.arn) }, accounts);
  for (const account of create) await grantKeyToAccount(kms, key.arn, account);
  return create;
}
