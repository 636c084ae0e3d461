import { describe, expect, it } from 'vitest';
import { drRoleArn, protectionFor, shareRefusal, sourceGrantName } from '../../../lib/domain/dr-account.ts';
import { drAccounts, parsePolicy, PolicyError, policyVersion } from '../../../lib/domain/policy.ts';
import { launchPermissionsFor } from '../../../lib/domain/replication.ts';
import { replicationRequest } from '../../../lib/workflows/replication.ts';

const VAULT = '222222222222';

const policyWith = (dr: Record<string, unknown>[], replication: Record<string, unknown> = {}) =>
  parsePolicy({ regions: { sources: ['us-east-1'], dr }, replication });

const mixed = policyWith([
  { region: 'us-west-2', kmsKeyId: 'alias/vault', account: VAULT },
  { region: 'eu-west-1', kmsKeyId: 'alias/ami-dr' },
]);

describe('DR account targets in the policy', () => {
  it('name the account and the role to assume there, ami-dr-replicator by default', () => {
    expect(drRoleArn(mixed.regions.dr[0]!)).toBe(`arn:aws:iam::${VAULT}:role/ami-dr-replicator`);
    expect(drRoleArn({ account: VAULT, role: 'vault-copier' })).toBe(`arn:aws:iam::${VAULT}:role/vault-copier`);
    expect(drRoleArn(mixed.regions.dr[1]!)).toBeUndefined();
    expect(drAccounts(mixed)).toEqual([VAULT]);
  });

  it('refuse a role without an account, and an account that is not 12 digits, naming the field', () => {
    expect(() => policyWith([{ region: 'us-west-2', kmsKeyId: 'alias/k', role: 'r' }])).toThrow(
      /regions\.dr\.0\.role: needs account/,
    );
    expect(() => policyWith([{ region: 'us-west-2', kmsKeyId: 'alias/k', account: '2222' }])).toThrow(PolicyError);
  });

  it('leave the fingerprint of a policy without them unchanged', () => {
    const before = parsePolicy({
      regions: { sources: ['us-east-1'], dr: [{ region: 'us-west-2', kmsKeyId: 'alias/k' }] },
    });
    expect(policyVersion(before)).toBe(policyVersion(policyWith([{ region: 'us-west-2', kmsKeyId: 'alias/k' }])));
    expect(policyVersion(mixed)).not.toBe(policyVersion(before));
  });

  it("protect a DR account's copies by default, own-account copies as replication says, either overridable", () => {
    expect(protectionFor(mixed, 'us-west-2')).toBe(true);
    expect(protectionFor(mixed, 'eu-west-1')).toBe(false);
    const overridden = policyWith(
      [
        { region: 'us-west-2', kmsKeyId: 'alias/vault', account: VAULT, deregistrationProtection: false },
        { region: 'eu-west-1', kmsKeyId: 'alias/ami-dr', deregistrationProtection: true },
      ],
      { deregistrationProtection: false },
    );
    expect([protectionFor(overridden, 'us-west-2'), protectionFor(overridden, 'eu-west-1')]).toEqual([false, true]);
  });

  it('carry the account and role into the replication targets', () => {
    expect(replicationRequest(mixed, 'us-east-1', 'ami-0123456789abcdef0').input.targets).toEqual([
      {
        region: 'us-west-2',
        kmsKeyId: 'alias/vault',
        account: VAULT,
        roleArn: `arn:aws:iam::${VAULT}:role/ami-dr-replicator`,
      },
      { region: 'eu-west-1', kmsKeyId: 'alias/ami-dr' },
    ]);
  });
});

describe('sharing a source with a DR account', () => {
  it('refuses a source under the AWS managed key, saying why and what to do', () => {
    const reason = shareRefusal('ami-0123456789abcdef0', [
      { keyArn: 'arn:aws:kms:us-east-1:111111111111:key/a', manager: 'CUSTOMER' },
      { keyArn: 'arn:aws:kms:us-east-1:111111111111:key/b', manager: 'AWS' },
    ]);
    expect(reason).toContain('AWS managed key aws/ebs (arn:aws:kms:us-east-1:111111111111:key/b)');
    expect(reason).toContain('re-encrypt the image under a customer managed key');
    expect(shareRefusal('ami-0123456789abcdef0', [{ keyArn: 'k', manager: 'CUSTOMER' }])).toBeUndefined();
    expect(shareRefusal('ami-0123456789abcdef0', [])).toBeUndefined();
  });

  it("names the key grant per image and account, and never carries ami-dr's own share to the copies", () => {
    expect(sourceGrantName('ami-0123456789abcdef0', VAULT)).toBe(`ami-dr-source-ami-0123456789abcdef0-${VAULT}`);
    expect(launchPermissionsFor([{ userId: VAULT }, { userId: '333333333333' }], mixed, true)).toEqual([
      { userId: '333333333333' },
    ]);
  });
});
