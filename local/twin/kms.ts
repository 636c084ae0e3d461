import { createHash, randomUUID } from 'node:crypto';
import {
  jsonError,
  jsonResponse,
  TwinServiceError,
  type ServiceHandler,
  type TwinRequest,
  type TwinResponse,
} from './http.ts';
import { decodeToken, encodeToken, page } from './query-protocol.ts';
import { defaultKeyPolicy } from './kms-access.ts';
import type { Clock } from './clock.ts';
import type { KmsKeyState, TwinKmsKey, TwinState } from './state.ts';

/*
 * KMS keys live in the shared twin state, per region: a key, its aliases and its grants exist in one region only.
 * The same alias name in two regions names two different keys, and a key ARN is only valid in the region it
 * names, as in AWS, where a DR region's copy must be encrypted under a key of that region.
 */

export interface KmsKeyOptions {
  alias?: string;
  state?: KmsKeyState;
  description?: string;
  keySpec?: string;
  keyUsage?: string;
  multiRegion?: boolean;
  keyManager?: 'CUSTOMER' | 'AWS';
  /** With state PendingDeletion: days until the key is gone (7..30, default 30). */
  pendingWindowInDays?: number;
}

const DAY_MS = 86_400_000;

/** Creates a key (and optionally points an alias at it) in a region: used by CreateKey and by seeding. */
export function createKey(state: TwinState, clock: Clock, region: string, options: KmsKeyOptions = {}): TwinKmsKey {
  const multiRegion = options.multiRegion ?? false;
  const keyId = `${multiRegion ? 'mrk-' : ''}${state.newUuid()}`;
  const key: TwinKmsKey = {
    keyId,
    arn: state.keyArn(region, keyId),
    region,
    state: options.state ?? 'Enabled',
    keyManager: options.keyManager ?? 'CUSTOMER',
    keySpec: options.keySpec ?? 'SYMMETRIC_DEFAULT',
    keyUsage: options.keyUsage ?? 'ENCRYPT_DECRYPT',
    description: options.description ?? '',
    multiRegion,
    creationDate: clock.now(),
    grants: [],
  };
  if (key.state === 'PendingDeletion') key.deletionDate = clock.now() + (options.pendingWindowInDays ?? 30) * DAY_MS;
  state.addKey(key);
  if (options.alias)
    state
      .region(region)
      .aliases.set(options.alias.startsWith('alias/') ? options.alias : `alias/${options.alias}`, keyId);
  return key;
}

/** The key record a reference names in `region` (id, ARN, alias, alias ARN), after removing expired keys. */
export function findKey(state: TwinState, clock: Clock, region: string, ref: string): TwinKmsKey | undefined {
  expireKeys(state, clock, region);
  const resolved = state.resolve(region, ref);
  return resolved ? state.region(region).keys.get(resolved.keyId) : undefined;
}

/** Keys whose deletion date has passed on the twin clock are gone, with their aliases. */
export function expireKeys(state: TwinState, clock: Clock, region: string): void {
  const now = clock.now();
  const regionState = state.region(region);
  for (const key of [...regionState.keys.values()]) {
    if (key.state !== 'PendingDeletion' || key.deletionDate === undefined || key.deletionDate > now) continue;
    regionState.keys.delete(key.keyId);
    for (const [alias, target] of [...regionState.aliases]) if (target === key.keyId) regionState.aliases.delete(alias);
  }
}

const seconds = (ms: number): number => ms / 1000;

/** KeyMetadata with the member names of the KMS model. */
export function keyMetadata(key: TwinKmsKey, accountId: string): Record<string, unknown> {
  return {
    AWSAccountId: accountId,
    KeyId: key.keyId,
    Arn: key.arn,
    CreationDate: seconds(key.creationDate),
    Enabled: key.state === 'Enabled',
    Description: key.description,
    KeyUsage: key.keyUsage,
    KeyState: key.state,
    Origin: 'AWS_KMS',
    KeyManager: key.keyManager,
    CustomerMasterKeySpec: key.keySpec,
    KeySpec: key.keySpec,
    EncryptionAlgorithms: key.keySpec === 'SYMMETRIC_DEFAULT' ? ['SYMMETRIC_DEFAULT'] : [],
    MultiRegion: key.multiRegion,
    ...(key.deletionDate !== undefined
      ? {
          DeletionDate: seconds(key.deletionDate),
          PendingDeletionWindowInDays: Math.round((key.deletionDate - pendingSince(key)) / DAY_MS),
        }
      : {}),
  };
}

// The window is not stored separately: it is what ScheduleKeyDeletion set, from the time it was called.
const scheduledAt = new WeakMap<TwinKmsKey, number>();
const pendingSince = (key: TwinKmsKey): number => scheduledAt.get(key) ?? key.creationDate;

export interface KmsServiceContext {
  accountId: string;
  clock: Clock;
}

type Action = (region: string, input: Record<string, unknown>) => unknown;

/** KMS over JSON 1.1 (`X-Amz-Target: TrentService.<Action>`), on the keys of the shared twin state. */
export function createKmsService(state: TwinState, ctx: KmsServiceContext): ServiceHandler {
  const { accountId, clock } = ctx;

  const str = (input: Record<string, unknown>, name: string): string | undefined => {
    const value = input[name];
    return typeof value === 'string' && value !== '' ? value : undefined;
  };
  const required = (input: Record<string, unknown>, name: string): string => {
    const value = str(input, name);
    if (value === undefined)
      throw new TwinServiceError(
        'ValidationException',
        `1 validation error detected: Value null at '${lowerFirst(name)}' failed to satisfy constraint: Member must not be null`,
      );
    return value;
  };
  const aliasArn = (region: string, ref: string): string =>
    ref.startsWith('arn:') ? ref : `arn:aws:kms:${region}:${accountId}:${ref}`;
  const keyArn = (region: string, ref: string): string => (ref.startsWith('arn:') ? ref : state.keyArn(region, ref));
  const mustFind = (region: string, ref: string): TwinKmsKey => {
    const key = findKey(state, clock, region, ref);
    if (!key) {
      throw new TwinServiceError(
        'NotFoundException',
        ref.includes('alias/')
          ? `Alias ${aliasArn(region, ref)} is not found.`
          : `Key '${keyArn(region, ref)}' does not exist`,
      );
    }
    return key;
  };
  const notPending = (key: TwinKmsKey): void => {
    if (key.state === 'PendingDeletion')
      throw new TwinServiceError('KMSInvalidStateException', `${key.arn} is pending deletion.`);
  };
  const customerManaged = (key: TwinKmsKey): void => {
    if (key.keyManager === 'AWS')
      throw new TwinServiceError(
        'AccessDeniedException',
        `The key ${key.arn} is an AWS managed key and cannot be modified.`,
      );
  };

  const actions: Record<string, Action> = {
    CreateKey: (region, input) => {
      const keySpec = str(input, 'KeySpec') ?? str(input, 'CustomerMasterKeySpec') ?? 'SYMMETRIC_DEFAULT';
      const key = createKey(state, clock, region, {
        description: str(input, 'Description') ?? '',
        keySpec,
        keyUsage: str(input, 'KeyUsage') ?? (keySpec.startsWith('HMAC') ? 'GENERATE_VERIFY_MAC' : 'ENCRYPT_DECRYPT'),
        multiRegion: input.MultiRegion === true,
      });
      return { KeyMetadata: keyMetadata(key, accountId) };
    },

    DescribeKey: (region, input) => ({
      KeyMetadata: keyMetadata(mustFind(region, required(input, 'KeyId')), accountId),
    }),

    CreateAlias: (region, input) => {
      const aliasName = required(input, 'AliasName');
      const targetKeyId = required(input, 'TargetKeyId');
      if (!/^alias\/[a-zA-Z0-9/_-]{1,250}$/.test(aliasName)) {
        throw new TwinServiceError(
          'ValidationException',
          `Alias must start with the prefix "alias/" and contain only alphanumeric characters, '/', '_' or '-'.`,
        );
      }
      if (aliasName.startsWith('alias/aws/'))
        throw new TwinServiceError('NotAuthorizedException', 'Cannot create alias with prefix alias/aws/');
      expireKeys(state, clock, region);
      const aliases = state.region(region).aliases;
      if (aliases.has(aliasName))
        throw new TwinServiceError(
          'AlreadyExistsException',
          `An alias with the name ${aliasArn(region, aliasName)} already exists`,
        );
      if (targetKeyId.includes('alias/'))
        throw new TwinServiceError('ValidationException', 'Aliases must refer to keys. Not aliases');
      const key = mustFind(region, targetKeyId);
      notPending(key);
      aliases.set(aliasName, key.keyId);
      return {};
    },

    ListAliases: (region, input) => {
      const limit = input.Limit === undefined ? 50 : Number(input.Limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
        throw new TwinServiceError(
          'ValidationException',
          `1 validation error detected: Value '${String(input.Limit)}' at 'limit' failed to satisfy constraint: Member must have value between 1 and 100`,
        );
      }
      // Every region lists its AWS-managed EBS alias, as AWS lists predefined aliases.
      state.defaultEbsKey(region);
      expireKeys(state, clock, region);
      const regionState = state.region(region);
      let aliases = [...regionState.aliases].sort(([a], [b]) => a.localeCompare(b));
      const keyRef = str(input, 'KeyId');
      if (keyRef !== undefined) {
        const key = mustFind(region, keyRef);
        aliases = aliases.filter(([, target]) => target === key.keyId);
      }
      const scope = `aliases:${region}:${keyRef ?? ''}`;
      const offset = decodeToken(scope, str(input, 'Marker'));
      if (offset === undefined) throw new TwinServiceError('InvalidMarkerException', 'Invalid marker');
      const { items, next } = page(aliases, offset, limit);
      return {
        Aliases: items.map(([name, target]) => {
          const created = regionState.keys.get(target)?.creationDate;
          return {
            AliasName: name,
            AliasArn: aliasArn(region, name),
            TargetKeyId: target,
            ...(created !== undefined ? { CreationDate: seconds(created), LastUpdatedDate: seconds(created) } : {}),
          };
        }),
        Truncated: next !== undefined,
        ...(next !== undefined ? { NextMarker: encodeToken(scope, next) } : {}),
      };
    },

    DisableKey: (region, input) => {
      const key = mustFind(region, required(input, 'KeyId'));
      customerManaged(key);
      notPending(key);
      key.state = 'Disabled';
      return {};
    },

    EnableKey: (region, input) => {
      const key = mustFind(region, required(input, 'KeyId'));
      customerManaged(key);
      notPending(key);
      key.state = 'Enabled';
      return {};
    },

    ScheduleKeyDeletion: (region, input) => {
      const key = mustFind(region, required(input, 'KeyId'));
      const days = input.PendingWindowInDays === undefined ? 30 : Number(input.PendingWindowInDays);
      if (!Number.isInteger(days) || days < 7 || days > 30) {
        throw new TwinServiceError(
          'ValidationException',
          `1 validation error detected: Value '${String(input.PendingWindowInDays)}' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value between 7 and 30`,
        );
      }
      customerManaged(key);
      notPending(key);
      key.state = 'PendingDeletion';
      scheduledAt.set(key, clock.now());
      key.deletionDate = clock.now() + days * DAY_MS;
      return {
        KeyId: key.arn,
        DeletionDate: seconds(key.deletionDate),
        KeyState: key.state,
        PendingWindowInDays: days,
      };
    },

    CancelKeyDeletion: (region, input) => {
      const key = mustFind(region, required(input, 'KeyId'));
      if (key.state !== 'PendingDeletion')
        throw new TwinServiceError('KMSInvalidStateException', `${key.arn} is not pending deletion.`);
      // AWS leaves a key whose deletion was cancelled disabled.
      key.state = 'Disabled';
      delete key.deletionDate;
      return { KeyId: key.arn };
    },

    CreateGrant: (region, input) => {
      const ref = required(input, 'KeyId');
      const granteePrincipal = required(input, 'GranteePrincipal');
      const operations = Array.isArray(input.Operations)
        ? input.Operations.filter((o): o is string => typeof o === 'string')
        : [];
      if (operations.length === 0)
        throw new TwinServiceError(
          'ValidationException',
          "1 validation error detected: Value null at 'operations' failed to satisfy constraint: Member must not be null",
        );
      // Grants name keys by id or ARN only.
      if (ref.includes('alias/')) throw new TwinServiceError('NotFoundException', `Invalid keyId ${ref}`);
      const key = mustFind(region, ref);
      if (key.state === 'Disabled') throw new TwinServiceError('DisabledException', `${key.arn} is disabled.`);
      notPending(key);
      const name = str(input, 'Name');
      // A named grant retried with identical parameters returns the original grant (KMS API reference, CreateGrant Name).
      const same = name
        ? key.grants.find(
            (g) =>
              g.name === name &&
              g.granteePrincipal === granteePrincipal &&
              g.operations.length === operations.length &&
              operations.every((o) => g.operations.includes(o)),
          )
        : undefined;
      if (same) return { GrantId: same.grantId, GrantToken: same.grantToken };
      const grantId = createHash('sha256').update(randomUUID()).digest('hex');
      const grantToken = Buffer.from(`${key.arn}:${grantId}`).toString('base64url');
      key.grants.push({ grantId, grantToken, granteePrincipal, operations, ...(name ? { name } : {}) });
      return { GrantId: grantId, GrantToken: grantToken };
    },

    ListGrants: (region, input) => {
      const key = mustFind(region, required(input, 'KeyId'));
      return {
        Grants: key.grants.map((g) => ({
          KeyId: key.arn,
          GrantId: g.grantId,
          GranteePrincipal: g.granteePrincipal,
          Operations: g.operations,
          IssuingAccount: `arn:aws:iam::${accountId}:root`,
          ...(g.name ? { Name: g.name } : {}),
        })),
        Truncated: false,
      };
    },

    RetireGrant: (region, input) => removeGrant(region, input, 'GrantToken'),
    RevokeGrant: (region, input) => removeGrant(region, input, 'GrantId'),

    GetKeyPolicy: (region, input) => {
      const key = mustFind(region, required(input, 'KeyId'));
      return { Policy: key.policy ?? defaultKeyPolicy(accountId), PolicyName: 'default' };
    },

    PutKeyPolicy: (region, input) => {
      const key = mustFind(region, required(input, 'KeyId'));
      const policy = required(input, 'Policy');
      try {
        JSON.parse(policy);
      } catch {
        throw new TwinServiceError('MalformedPolicyDocumentException', 'The new key policy is not valid JSON.');
      }
      key.policy = policy;
      return {};
    },
  };

  /** RetireGrant names the grant by token (or key and id), RevokeGrant by key and id. */
  function removeGrant(region: string, input: Record<string, unknown>, by: 'GrantToken' | 'GrantId') {
    const token = str(input, 'GrantToken');
    const keyRef = str(input, 'KeyId');
    const grantId = str(input, 'GrantId');
    const keys = keyRef ? [mustFind(region, keyRef)] : [...state.region(region).keys.values()];
    for (const key of keys) {
      const i = key.grants.findIndex((g) =>
        by === 'GrantToken' && token ? g.grantToken === token : g.grantId === (grantId ?? required(input, by)),
      );
      if (i >= 0) {
        key.grants.splice(i, 1);
        return {};
      }
    }
    throw new TwinServiceError('NotFoundException', `Grant ${token ?? grantId ?? ''} does not exist.`);
  }

  return (request: TwinRequest): TwinResponse => {
    const action = Object.hasOwn(actions, request.action) ? actions[request.action] : undefined;
    if (!action) return jsonError(400, 'UnknownOperationException', `Operation ${request.action} is not supported.`);
    try {
      return jsonResponse(action(request.region, request.json));
    } catch (error) {
      if (error instanceof TwinServiceError) return jsonError(error.status, error.code, error.message);
      throw error;
    }
  };
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}
