import { createHash, randomUUID } from 'node:crypto';
import { jsonError, jsonResponse, type ServiceHandler, type TwinRequest, type TwinResponse } from './http.ts';
import { decodeToken, encodeToken, page } from './query-protocol.ts';

/**
 * KMS keys per region. A key, its aliases and its grants exist in one region only: the same alias name in two
 * regions names two different keys, and a key ARN is only valid in the region it names — as in AWS, where a DR
 * region's copy must be encrypted under a key of that region.
 */
export type KmsKeyState = 'Enabled' | 'Disabled' | 'PendingDeletion';

export interface KmsKey {
  keyId: string;
  arn: string;
  region: string;
  state: KmsKeyState;
  keyManager: 'CUSTOMER' | 'AWS';
  keySpec: string;
  keyUsage: string;
  description: string;
  multiRegion: boolean;
  /** Epoch milliseconds (twin clock). */
  creationDate: number;
  deletionDate?: number;
  pendingWindowInDays?: number;
}

export interface KmsAlias {
  aliasName: string;
  aliasArn: string;
  targetKeyId: string;
  creationDate: number;
}

export interface KmsGrant {
  grantId: string;
  grantToken: string;
  keyId: string;
  granteePrincipal: string;
  operations: string[];
  name?: string;
}

export interface KmsClock {
  now(): number;
}

export interface KmsKeyOptions {
  alias?: string;
  state?: KmsKeyState;
  description?: string;
  keySpec?: string;
  keyUsage?: string;
  multiRegion?: boolean;
  keyManager?: 'CUSTOMER' | 'AWS';
  /** Only with state PendingDeletion: days until the key is gone (7..30). */
  pendingWindowInDays?: number;
}

const DAY_MS = 86_400_000;

export class KmsNotFoundError extends Error {
  override name = 'KmsNotFoundError';
}

/**
 * The key store CopyImage resolves `KmsKeyId` against and the KMS API serves. Keys scheduled for deletion
 * disappear once their deletion date passes on the twin's clock (checked when looked up).
 */
export class KmsKeyStore {
  private readonly keys = new Map<string, Map<string, KmsKey>>();
  private readonly aliases = new Map<string, Map<string, KmsAlias>>();
  private readonly grants = new Map<string, KmsGrant[]>();

  constructor(
    readonly accountId: string,
    private readonly clock: KmsClock,
  ) {}

  /** Creates a key (optionally with an alias) in a region; the seeding entry point too. */
  create(region: string, options: KmsKeyOptions = {}): KmsKey {
    const now = this.clock.now();
    const multiRegion = options.multiRegion ?? false;
    const keyId = `${multiRegion ? 'mrk-' : ''}${randomUUID()}`;
    const key: KmsKey = {
      keyId,
      arn: `arn:aws:kms:${region}:${this.accountId}:key/${keyId}`,
      region,
      state: options.state ?? 'Enabled',
      keyManager: options.keyManager ?? 'CUSTOMER',
      keySpec: options.keySpec ?? 'SYMMETRIC_DEFAULT',
      keyUsage: options.keyUsage ?? 'ENCRYPT_DECRYPT',
      description: options.description ?? '',
      multiRegion,
      creationDate: now,
    };
    if (key.state === 'PendingDeletion') {
      key.pendingWindowInDays = options.pendingWindowInDays ?? 30;
      key.deletionDate = now + key.pendingWindowInDays * DAY_MS;
    }
    this.regionKeys(region).set(keyId, key);
    if (options.alias) this.setAlias(region, options.alias, keyId);
    return key;
  }

  /** Points an alias at a key (creating or re-pointing it); the API's checks live in the service. */
  setAlias(region: string, aliasName: string, keyId: string): KmsAlias {
    const name = aliasName.startsWith('alias/') ? aliasName : `alias/${aliasName}`;
    const alias: KmsAlias = {
      aliasName: name,
      aliasArn: `arn:aws:kms:${region}:${this.accountId}:${name}`,
      targetKeyId: keyId,
      creationDate: this.clock.now(),
    };
    this.regionAliases(region).set(name, alias);
    return alias;
  }

  /**
   * The key named by a key id, key ARN, `alias/name` or alias ARN in `region`, or undefined. ARNs of another
   * region or account name no key here.
   */
  resolve(region: string, ref: string): KmsKey | undefined {
    this.expire(region);
    const arn = /^arn:aws:kms:([^:]+):(\d{12}):(key\/.+|alias\/.+)$/.exec(ref);
    let local = ref;
    if (arn) {
      if (arn[1] !== region || arn[2] !== this.accountId) return undefined;
      local = arn[3] ?? '';
    }
    if (local.startsWith('alias/')) {
      const alias = this.regionAliases(region).get(local);
      return alias ? this.regionKeys(region).get(alias.targetKeyId) : undefined;
    }
    if (arn && !local.startsWith('key/')) return undefined;
    return this.regionKeys(region).get(local.replace(/^key\//, ''));
  }

  /** The region's aliases, sorted by name (the listing order pages are cut from). */
  listAliases(region: string): KmsAlias[] {
    this.expire(region);
    return [...this.regionAliases(region).values()].sort((a, b) => a.aliasName.localeCompare(b.aliasName));
  }

  getAlias(region: string, aliasName: string): KmsAlias | undefined {
    return this.regionAliases(region).get(aliasName);
  }

  listKeys(region: string): KmsKey[] {
    this.expire(region);
    return [...this.regionKeys(region).values()];
  }

  setState(region: string, ref: string, state: KmsKeyState, pendingWindowInDays = 30): KmsKey {
    const key = this.resolve(region, ref);
    if (!key) throw new KmsNotFoundError(`Key '${ref}' does not exist in ${region}`);
    key.state = state;
    if (state === 'PendingDeletion') {
      key.pendingWindowInDays = pendingWindowInDays;
      key.deletionDate = this.clock.now() + pendingWindowInDays * DAY_MS;
    } else {
      delete key.pendingWindowInDays;
      delete key.deletionDate;
    }
    return key;
  }

  addGrant(key: KmsKey, granteePrincipal: string, operations: string[], name?: string): KmsGrant {
    const grantId = createHash('sha256').update(randomUUID()).digest('hex');
    const grant: KmsGrant = {
      grantId,
      grantToken: Buffer.from(`${key.arn}:${grantId}`).toString('base64url'),
      keyId: key.keyId,
      granteePrincipal,
      operations,
      ...(name ? { name } : {}),
    };
    this.grants.set(key.arn, [...(this.grants.get(key.arn) ?? []), grant]);
    return grant;
  }

  grantsOf(key: KmsKey): KmsGrant[] {
    return [...(this.grants.get(key.arn) ?? [])];
  }

  /** The AWS-managed `alias/aws/ebs` key of a region, made on first use as AWS does. */
  awsManagedEbsKey(region: string): KmsKey {
    const existing = this.resolve(region, 'alias/aws/ebs');
    if (existing) return existing;
    return this.create(region, { alias: 'alias/aws/ebs', keyManager: 'AWS', description: 'Default key that protects my EBS volumes when no other key is defined' });
  }

  private expire(region: string): void {
    const now = this.clock.now();
    const keys = this.regionKeys(region);
    for (const key of keys.values()) {
      if (key.state !== 'PendingDeletion' || key.deletionDate === undefined || key.deletionDate > now) continue;
      keys.delete(key.keyId);
      this.grants.delete(key.arn);
      const aliases = this.regionAliases(region);
      for (const alias of [...aliases.values()]) if (alias.targetKeyId === key.keyId) aliases.delete(alias.aliasName);
    }
  }

  private regionKeys(region: string): Map<string, KmsKey> {
    let keys = this.keys.get(region);
    if (!keys) this.keys.set(region, (keys = new Map()));
    return keys;
  }

  private regionAliases(region: string): Map<string, KmsAlias> {
    let aliases = this.aliases.get(region);
    if (!aliases) this.aliases.set(region, (aliases = new Map()));
    return aliases;
  }
}

class KmsError extends Error {
  override name = 'KmsError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const seconds = (ms: number): number => ms / 1000;

/** KeyMetadata with the member names of the KMS model. */
export function keyMetadata(key: KmsKey, accountId: string): Record<string, unknown> {
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
    ...(key.deletionDate !== undefined ? { DeletionDate: seconds(key.deletionDate), PendingDeletionWindowInDays: key.pendingWindowInDays } : {}),
  };
}

export interface KmsServiceContext {
  accountId: string;
}

type Action = (region: string, input: Record<string, unknown>) => unknown;

/** KMS over JSON 1.1 (`X-Amz-Target: TrentService.<Action>`), backed by the shared key store. */
export function createKmsService(keys: KmsKeyStore, ctx: KmsServiceContext): ServiceHandler {
  const accountId = ctx.accountId;

  const str = (input: Record<string, unknown>, name: string): string | undefined => {
    const value = input[name];
    return typeof value === 'string' && value !== '' ? value : undefined;
  };
  const required = (input: Record<string, unknown>, name: string): string => {
    const value = str(input, name);
    if (value === undefined) throw new KmsError('ValidationException', `1 validation error detected: Value null at '${lowerFirst(name)}' failed to satisfy constraint: Member must not be null`);
    return value;
  };
  const findKey = (region: string, ref: string): KmsKey => {
    const key = keys.resolve(region, ref);
    if (!key) {
      const what = ref.includes('alias/') ? `Alias ${aliasArn(region, ref)} is not found.` : `Key '${keyArn(region, ref)}' does not exist`;
      throw new KmsError('NotFoundException', what);
    }
    return key;
  };
  const aliasArn = (region: string, ref: string): string => (ref.startsWith('arn:') ? ref : `arn:aws:kms:${region}:${accountId}:${ref}`);
  const keyArn = (region: string, ref: string): string => (ref.startsWith('arn:') ? ref : `arn:aws:kms:${region}:${accountId}:key/${ref}`);
  const notPending = (key: KmsKey): void => {
    if (key.state === 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is pending deletion.`);
  };
  const customerManaged = (key: KmsKey): void => {
    // AWS refuses state changes on AWS-managed keys with an access error; the twin names it the same way.
    if (key.keyManager === 'AWS') throw new KmsError('AccessDeniedException', `The key ${key.arn} is an AWS managed key and cannot be modified.`);
  };

  const actions: Record<string, Action> = {
    CreateKey: (region, input) => {
      const keySpec = str(input, 'KeySpec') ?? str(input, 'CustomerMasterKeySpec') ?? 'SYMMETRIC_DEFAULT';
      const key = keys.create(region, {
        description: str(input, 'Description') ?? '',
        keySpec,
        keyUsage: str(input, 'KeyUsage') ?? (keySpec.startsWith('HMAC') ? 'GENERATE_VERIFY_MAC' : 'ENCRYPT_DECRYPT'),
        multiRegion: input.MultiRegion === true,
      });
      return { KeyMetadata: keyMetadata(key, accountId) };
    },

    DescribeKey: (region, input) => ({ KeyMetadata: keyMetadata(findKey(region, required(input, 'KeyId')), accountId) }),

    CreateAlias: (region, input) => {
      const aliasName = required(input, 'AliasName');
      const targetKeyId = required(input, 'TargetKeyId');
      if (!/^alias\/[a-zA-Z0-9/_-]{1,250}$/.test(aliasName)) {
        throw new KmsError('ValidationException', `Alias must start with the prefix "alias/" and contain only alphanumeric characters, '/', '_' or '-'.`);
      }
      if (aliasName.startsWith('alias/aws/')) throw new KmsError('NotAuthorizedException', 'Cannot create alias with prefix alias/aws/');
      if (keys.getAlias(region, aliasName)) throw new KmsError('AlreadyExistsException', `An alias with the name ${aliasArn(region, aliasName)} already exists`);
      if (targetKeyId.includes('alias/')) throw new KmsError('ValidationException', 'Aliases must refer to keys. Not aliases');
      const key = findKey(region, targetKeyId);
      notPending(key);
      keys.setAlias(region, aliasName, key.keyId);
      return {};
    },

    ListAliases: (region, input) => {
      const limit = input.Limit === undefined ? 50 : Number(input.Limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
        throw new KmsError('ValidationException', `1 validation error detected: Value '${String(input.Limit)}' at 'limit' failed to satisfy constraint: Member must have value between 1 and 100`);
      }
      // Every region lists its AWS-managed EBS alias, as AWS lists predefined aliases.
      keys.awsManagedEbsKey(region);
      let aliases = keys.listAliases(region);
      const keyRef = str(input, 'KeyId');
      if (keyRef !== undefined) {
        const key = findKey(region, keyRef);
        aliases = aliases.filter((a) => a.targetKeyId === key.keyId);
      }
      const scope = `aliases:${region}:${keyRef ?? ''}`;
      const offset = decodeToken(scope, str(input, 'Marker'));
      if (offset === undefined) throw new KmsError('InvalidMarkerException', 'Invalid marker');
      const { items, next } = page(aliases, offset, limit);
      return {
        Aliases: items.map((a) => ({
          AliasName: a.aliasName,
          AliasArn: a.aliasArn,
          TargetKeyId: a.targetKeyId,
          CreationDate: seconds(a.creationDate),
          LastUpdatedDate: seconds(a.creationDate),
        })),
        Truncated: next !== undefined,
        ...(next !== undefined ? { NextMarker: encodeToken(scope, next) } : {}),
      };
    },

    DisableKey: (region, input) => {
      const key = findKey(region, required(input, 'KeyId'));
      customerManaged(key);
      notPending(key);
      key.state = 'Disabled';
      return {};
    },

    EnableKey: (region, input) => {
      const key = findKey(region, required(input, 'KeyId'));
      customerManaged(key);
      notPending(key);
      key.state = 'Enabled';
      return {};
    },

    ScheduleKeyDeletion: (region, input) => {
      const key = findKey(region, required(input, 'KeyId'));
      const days = input.PendingWindowInDays === undefined ? 30 : Number(input.PendingWindowInDays);
      if (!Number.isInteger(days) || days < 7 || days > 30) {
        throw new KmsError('ValidationException', `1 validation error detected: Value '${String(input.PendingWindowInDays)}' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value between 7 and 30`);
      }
      customerManaged(key);
      notPending(key);
      keys.setState(region, key.keyId, 'PendingDeletion', days);
      return { KeyId: key.arn, DeletionDate: seconds(key.deletionDate ?? 0), KeyState: key.state, PendingWindowInDays: days };
    },

    CancelKeyDeletion: (region, input) => {
      const key = findKey(region, required(input, 'KeyId'));
      if (key.state !== 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is not pending deletion.`);
      // AWS leaves a key whose deletion was cancelled disabled.
      keys.setState(region, key.keyId, 'Disabled');
      return { KeyId: key.arn };
    },

    CreateGrant: (region, input) => {
      const ref = required(input, 'KeyId');
      const granteePrincipal = required(input, 'GranteePrincipal');
      const operations = Array.isArray(input.Operations) ? input.Operations.filter((o): o is string => typeof o === 'string') : [];
      if (operations.length === 0) throw new KmsError('ValidationException', "1 validation error detected: Value null at 'operations' failed to satisfy constraint: Member must not be null");
      if (ref.includes('alias/')) throw new KmsError('NotFoundException', `Invalid keyId ${ref}`);
      const key = findKey(region, ref);
      if (key.state === 'Disabled') throw new KmsError('DisabledException', `${key.arn} is disabled.`);
      notPending(key);
      const grant = keys.addGrant(key, granteePrincipal, operations, str(input, 'Name'));
      return { GrantId: grant.grantId, GrantToken: grant.grantToken };
    },
  };

  return (request: TwinRequest): TwinResponse => {
    const action = actions[request.action];
    if (!action) return jsonError(400, 'UnknownOperationException', `Operation ${request.action} is not supported.`);
    try {
      return jsonResponse(action(request.region, request.json));
    } catch (error) {
      if (error instanceof KmsError) return jsonError(400, error.code, error.message);
      throw error;
    }
  };
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}
