import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CancelKeyDeletionCommand,
  CreateAliasCommand,
  CreateGrantCommand,
  CreateKeyCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  ListAliasesCommand,
  ScheduleKeyDeletionCommand,
  paginateListAliases,
  type KMSClient,
} from '@aws-sdk/client-kms';
import { startHarness, type Harness } from './harness.ts';
import { errorName } from './errors.ts';
import { kmsClient } from '../../../lib/aws/clients.ts';

describe('twin KMS', () => {
  let twin: Harness;
  let west: KMSClient;
  let eu: KMSClient;
  beforeAll(async () => {
    twin = await startHarness();
    west = kmsClient(twin.clients, 'us-west-2');
    eu = kmsClient(twin.clients, 'eu-west-1');
  });
  afterAll(async () => {
    await twin.stop();
  });

  it('CreateKey returns the model KeyMetadata of an enabled customer key', async () => {
    const { KeyMetadata: meta } = await west.send(new CreateKeyCommand({ Description: 'dr key' }));
    expect(meta).toMatchObject({
      KeyState: 'Enabled',
      Enabled: true,
      KeyManager: 'CUSTOMER',
      KeySpec: 'SYMMETRIC_DEFAULT',
      KeyUsage: 'ENCRYPT_DECRYPT',
      MultiRegion: false,
      Description: 'dr key',
      AWSAccountId: twin.accountId,
    });
    expect(meta?.Arn).toBe(`arn:aws:kms:us-west-2:${twin.accountId}:key/${meta?.KeyId}`);
    expect(meta?.CreationDate).toEqual(new Date(twin.clock.now()));
    expect(meta?.DeletionDate).toBeUndefined();
  });

  it('DescribeKey finds a key by id, key ARN, alias name and alias ARN', async () => {
    const { KeyMetadata: meta } = await west.send(new CreateKeyCommand({}));
    await west.send(new CreateAliasCommand({ AliasName: 'alias/describe-me', TargetKeyId: meta?.KeyId }));
    const refs = [
      meta?.KeyId,
      meta?.Arn,
      'alias/describe-me',
      `arn:aws:kms:us-west-2:${twin.accountId}:alias/describe-me`,
    ];
    for (const ref of refs) {
      const found = await west.send(new DescribeKeyCommand({ KeyId: ref }));
      expect(found.KeyMetadata?.KeyId).toBe(meta?.KeyId);
    }
  });

  it('keys and aliases are per region', async () => {
    const { KeyMetadata: meta } = await west.send(new CreateKeyCommand({}));
    await west.send(new CreateAliasCommand({ AliasName: 'alias/only-west', TargetKeyId: meta?.Arn }));
    expect(await errorName(eu.send(new DescribeKeyCommand({ KeyId: 'alias/only-west' })))).toBe('NotFoundException');
    expect(await errorName(eu.send(new DescribeKeyCommand({ KeyId: meta?.KeyId })))).toBe('NotFoundException');
    expect(await errorName(eu.send(new DescribeKeyCommand({ KeyId: meta?.Arn })))).toBe('NotFoundException');
    // The same alias name in another region is another key.
    const { KeyMetadata: euKey } = await eu.send(new CreateKeyCommand({}));
    await eu.send(new CreateAliasCommand({ AliasName: 'alias/only-west', TargetKeyId: euKey?.KeyId }));
    const resolved = await eu.send(new DescribeKeyCommand({ KeyId: 'alias/only-west' }));
    expect(resolved.KeyMetadata?.KeyId).toBe(euKey?.KeyId);
    expect(twin.state.resolve('us-west-2', 'alias/only-west')?.keyId).toBe(meta?.KeyId);
  });

  it('DescribeKey of an unknown key or alias fails with NotFoundException', async () => {
    expect(await errorName(west.send(new DescribeKeyCommand({ KeyId: '11111111-2222-3333-4444-555555555555' })))).toBe(
      'NotFoundException',
    );
    expect(await errorName(west.send(new DescribeKeyCommand({ KeyId: 'alias/nope' })))).toBe('NotFoundException');
  });

  it('CreateAlias rejects duplicates, reserved names and unknown targets', async () => {
    const { KeyMetadata: meta } = await west.send(new CreateKeyCommand({}));
    await west.send(new CreateAliasCommand({ AliasName: 'alias/dup', TargetKeyId: meta?.KeyId }));
    expect(
      await errorName(west.send(new CreateAliasCommand({ AliasName: 'alias/dup', TargetKeyId: meta?.KeyId }))),
    ).toBe('AlreadyExistsException');
    expect(
      await errorName(west.send(new CreateAliasCommand({ AliasName: 'alias/aws/mine', TargetKeyId: meta?.KeyId }))),
    ).toBe('NotAuthorizedException');
    expect(
      await errorName(west.send(new CreateAliasCommand({ AliasName: 'no-prefix', TargetKeyId: meta?.KeyId }))),
    ).toBe('ValidationException');
    expect(
      await errorName(
        west.send(
          new CreateAliasCommand({ AliasName: 'alias/orphan', TargetKeyId: '11111111-2222-3333-4444-555555555555' }),
        ),
      ),
    ).toBe('NotFoundException');
  });

  it('ListAliases pages with Limit/Marker and filters by key', async () => {
    const region = kmsClient(twin.clients, 'ap-southeast-2');
    const { KeyMetadata: meta } = await region.send(new CreateKeyCommand({}));
    for (let i = 0; i < 7; i++)
      await region.send(new CreateAliasCommand({ AliasName: `alias/page-${i}`, TargetKeyId: meta?.KeyId }));
    const first = await region.send(new ListAliasesCommand({ Limit: 3 }));
    expect(first.Aliases).toHaveLength(3);
    expect(first.Truncated).toBe(true);
    expect(first.NextMarker).toBeTruthy();
    const names: string[] = [];
    for await (const p of paginateListAliases({ client: region, pageSize: 3 }, {}))
      names.push(...(p.Aliases ?? []).map((a) => a.AliasName ?? ''));
    // Seven of ours plus the region's AWS-managed EBS alias, each once.
    expect(names).toHaveLength(8);
    expect(new Set(names).size).toBe(8);
    expect(names).toContain('alias/aws/ebs');
    const mine = await region.send(new ListAliasesCommand({ KeyId: meta?.KeyId }));
    expect(mine.Aliases?.map((a) => a.AliasName).sort()).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `alias/page-${i}`));
    expect(mine.Aliases?.[0]).toMatchObject({
      TargetKeyId: meta?.KeyId,
      AliasArn: `arn:aws:kms:ap-southeast-2:${twin.accountId}:alias/page-0`,
    });
    expect(mine.Truncated).toBe(false);
    expect(await errorName(region.send(new ListAliasesCommand({ Marker: 'garbage' })))).toBe('InvalidMarkerException');
    expect(await errorName(region.send(new ListAliasesCommand({ Limit: 101 })))).toBe('ValidationException');
  });

  it('the AWS-managed EBS key describes itself as AWS managed', async () => {
    await west.send(new ListAliasesCommand({}));
    const ebs = await west.send(new DescribeKeyCommand({ KeyId: 'alias/aws/ebs' }));
    expect(ebs.KeyMetadata?.KeyManager).toBe('AWS');
    expect(await errorName(west.send(new DisableKeyCommand({ KeyId: ebs.KeyMetadata?.KeyId })))).toBe(
      'AccessDeniedException',
    );
  });

  it('DisableKey and EnableKey change KeyState; a disabled key refuses grants', async () => {
    const { KeyMetadata: meta } = await west.send(new CreateKeyCommand({}));
    await west.send(new DisableKeyCommand({ KeyId: meta?.KeyId }));
    const disabled = await west.send(new DescribeKeyCommand({ KeyId: meta?.KeyId }));
    expect(disabled.KeyMetadata).toMatchObject({ KeyState: 'Disabled', Enabled: false });
    expect(twin.state.resolve('us-west-2', meta?.Arn ?? '')?.state).toBe('Disabled');
    expect(
      await errorName(
        west.send(
          new CreateGrantCommand({
            KeyId: meta?.KeyId,
            GranteePrincipal: 'arn:aws:iam::111111111111:root',
            Operations: ['Decrypt'],
          }),
        ),
      ),
    ).toBe('DisabledException');
    await west.send(new EnableKeyCommand({ KeyId: meta?.KeyId }));
    const enabled = await west.send(new DescribeKeyCommand({ KeyId: meta?.KeyId }));
    expect(enabled.KeyMetadata).toMatchObject({ KeyState: 'Enabled', Enabled: true });
  });

  it('CreateGrant returns a grant id and token for an enabled key', async () => {
    const { KeyMetadata: meta } = await west.send(new CreateKeyCommand({}));
    const grant = await west.send(
      new CreateGrantCommand({
        KeyId: meta?.Arn,
        GranteePrincipal: 'arn:aws:iam::111111111111:root',
        Operations: ['Decrypt', 'CreateGrant'],
      }),
    );
    expect(grant.GrantId).toMatch(/^[0-9a-f]{64}$/);
    expect(grant.GrantToken).toBeTruthy();
    const again = await west.send(
      new CreateGrantCommand({
        KeyId: meta?.KeyId,
        GranteePrincipal: 'arn:aws:iam::111111111111:root',
        Operations: ['Decrypt'],
      }),
    );
    expect(again.GrantId).not.toBe(grant.GrantId);
  });

  it('ScheduleKeyDeletion puts the key in PendingDeletion, which blocks enable, disable and grants', async () => {
    const { KeyMetadata: meta } = await west.send(new CreateKeyCommand({}));
    const scheduled = await west.send(new ScheduleKeyDeletionCommand({ KeyId: meta?.KeyId, PendingWindowInDays: 7 }));
    expect(scheduled).toMatchObject({ KeyId: meta?.Arn, KeyState: 'PendingDeletion', PendingWindowInDays: 7 });
    expect(scheduled.DeletionDate).toEqual(new Date(twin.clock.now() + 7 * 86_400_000));
    const described = await west.send(new DescribeKeyCommand({ KeyId: meta?.KeyId }));
    expect(described.KeyMetadata).toMatchObject({ KeyState: 'PendingDeletion', Enabled: false });
    expect(described.KeyMetadata?.DeletionDate).toEqual(scheduled.DeletionDate);
    expect(await errorName(west.send(new EnableKeyCommand({ KeyId: meta?.KeyId })))).toBe('KMSInvalidStateException');
    expect(await errorName(west.send(new DisableKeyCommand({ KeyId: meta?.KeyId })))).toBe('KMSInvalidStateException');
    expect(await errorName(west.send(new ScheduleKeyDeletionCommand({ KeyId: meta?.KeyId })))).toBe(
      'KMSInvalidStateException',
    );
    expect(
      await errorName(
        west.send(
          new CreateGrantCommand({
            KeyId: meta?.KeyId,
            GranteePrincipal: 'arn:aws:iam::111111111111:root',
            Operations: ['Decrypt'],
          }),
        ),
      ),
    ).toBe('KMSInvalidStateException');
    await west.send(new CancelKeyDeletionCommand({ KeyId: meta?.KeyId }));
    expect((await west.send(new DescribeKeyCommand({ KeyId: meta?.KeyId }))).KeyMetadata?.KeyState).toBe('Disabled');
  });

  it('ScheduleKeyDeletion accepts 7..30 days only', async () => {
    const { KeyMetadata: meta } = await west.send(new CreateKeyCommand({}));
    expect(
      await errorName(west.send(new ScheduleKeyDeletionCommand({ KeyId: meta?.KeyId, PendingWindowInDays: 6 }))),
    ).toBe('ValidationException');
    expect(
      await errorName(west.send(new ScheduleKeyDeletionCommand({ KeyId: meta?.KeyId, PendingWindowInDays: 31 }))),
    ).toBe('ValidationException');
    const defaulted = await west.send(new ScheduleKeyDeletionCommand({ KeyId: meta?.KeyId }));
    expect(defaulted.PendingWindowInDays).toBe(30);
  });

  it('a key pending deletion is gone, with its aliases, once its deletion date passes', async () => {
    const { KeyMetadata: meta } = await west.send(new CreateKeyCommand({}));
    await west.send(new CreateAliasCommand({ AliasName: 'alias/doomed', TargetKeyId: meta?.KeyId }));
    await west.send(new ScheduleKeyDeletionCommand({ KeyId: meta?.KeyId, PendingWindowInDays: 7 }));
    twin.clock.advance(7 * 86_400_000);
    expect(await errorName(west.send(new DescribeKeyCommand({ KeyId: meta?.KeyId })))).toBe('NotFoundException');
    expect(await errorName(west.send(new DescribeKeyCommand({ KeyId: 'alias/doomed' })))).toBe('NotFoundException');
  });
});
