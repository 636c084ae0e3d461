import { describe, expect, it } from 'vitest';
import {
  consumersOf,
  grantName,
  granteeOf,
  keyPolicyStatements,
  missingKeyAccess,
  planGrants,
  type KeyAccess,
} from '../../../lib/domain/key-access.ts';
import { computeReadiness, planReconciliation } from '../../../lib/domain/readiness.ts';
import { copy, input, KEY_ARN, policy, source } from './fixtures.ts';

const PARTNER = '111122223333';
const ORG = 'arn:aws:organizations::999999999999:organization/o-abcdefghij';
const OU = 'arn:aws:organizations::999999999999:ou/o-abcdefghij/ou-ab12-cdefghij';

const ownerOnly = (keyArn: string, extra: Record<string, unknown>[] = []): string =>
  JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::000000000000:root' }, Action: 'kms:*', Resource: '*' },
      ...extra,
    ],
  });
const access = (region: keyof typeof KEY_ARN, parts: Partial<KeyAccess> = {}): KeyAccess => ({
  keyArn: KEY_ARN[region],
  policy: ownerOnly(KEY_ARN[region]),
  grants: [],
  ...parts,
});
const partnerGrant = {
  grantId: 'g-1',
  name: grantName(PARTNER),
  granteePrincipal: granteeOf(PARTNER),
  operations: ['Decrypt', 'DescribeKey', 'CreateGrant', 'GenerateDataKeyWithoutPlaintext', 'ReEncryptFrom'],
};

function sharedWithPartner(keyAccess: 'check' | 'grant', accesses: { 'us-west-2': KeyAccess; 'eu-west-1': KeyAccess }) {
  const src = source('ami-1');
  const c1 = copy(src, 'us-west-2');
  const c2 = copy(src, 'eu-west-1');
  return computeReadiness({
    ...input({
      policy: policy({
        replication: {
          tagDenyList: ['CostCenter*'],
          extraTags: { 'dr-copy': 'true' },
          keyAccess,
          addLaunchPermissions: { userIds: [PARTNER], organizationArns: [ORG] },
        },
      }),
      sources: [src],
      copies: [c1, c2],
      permissions: [
        [c1, [{ userId: PARTNER }, { organizationArn: ORG }]],
        [c2, [{ userId: PARTNER }, { organizationArn: ORG }]],
      ],
    }),
    keyAccess: accesses,
  });
}

const orgStatement = {
  Effect: 'Allow',
  Principal: { AWS: '*' },
  Action: ['kms:Decrypt', 'kms:DescribeKey', 'kms:CreateGrant', 'kms:ReEncrypt*', 'kms:GenerateDataKey*'],
  Resource: '*',
  Condition: { StringEquals: { 'aws:PrincipalOrgID': 'o-abcdefghij' } },
};

describe('key access of a shared copy', () => {
  it('is missing for an account with neither grant nor key-policy statement, and for an organization without a statement', () => {
    const missing = missingKeyAccess(
      access('us-west-2'),
      consumersOf([{ userId: PARTNER }, { organizationArn: ORG }, { group: 'all' }]),
    );
    expect(missing.map((c) => c.id)).toEqual([PARTNER, ORG]);
  });

  it('is there by a grant with the launch operations, a statement naming the account, or an org/OU condition', () => {
    expect(
      missingKeyAccess(access('us-west-2', { grants: [partnerGrant] }), consumersOf([{ userId: PARTNER }])),
    ).toEqual([]);
    const decryptOnly = { ...partnerGrant, operations: ['Decrypt'] };
    expect(
      missingKeyAccess(access('us-west-2', { grants: [decryptOnly] }), consumersOf([{ userId: PARTNER }])),
    ).toHaveLength(1);
    const byPolicy = ownerOnly('', [
      { ...orgStatement, Principal: { AWS: granteeOf(PARTNER) }, Condition: undefined },
      orgStatement,
      {
        ...orgStatement,
        Condition: { 'ForAnyValue:StringLike': { 'aws:PrincipalOrgPaths': ['o-abcdefghij/*/ou-ab12-cdefghij/*'] } },
      },
    ]);
    expect(
      missingKeyAccess(
        access('us-west-2', { policy: byPolicy }),
        consumersOf([{ userId: PARTNER }, { organizationArn: ORG }, { organizationalUnitArn: OU }]),
      ),
    ).toEqual([]);
    // The statements validate prints are ones the check accepts.
    const printed = ownerOnly(
      '',
      keyPolicyStatements(consumersOf([{ userId: PARTNER }, { organizationArn: ORG }, { organizationalUnitArn: OU }])),
    );
    expect(
      missingKeyAccess(
        access('us-west-2', { policy: printed }),
        consumersOf([{ userId: PARTNER }, { organizationArn: ORG }, { organizationalUnitArn: OU }]),
      ),
    ).toEqual([]);
  });

  it('grants only accounts without access, and retires only ami-dr grants of accounts no longer shared with', () => {
    const foreign = { grantId: 'g-2', granteePrincipal: granteeOf('444455556666'), operations: ['Decrypt'] };
    const stale = {
      ...partnerGrant,
      grantId: 'g-3',
      name: grantName('555566667777'),
      granteePrincipal: granteeOf('555566667777'),
    };
    const key = access('us-west-2', { grants: [partnerGrant, foreign, stale] });
    expect(planGrants(key, [PARTNER, '123456789012', '123456789012'])).toEqual({
      create: ['123456789012'],
      retire: [],
    });
    expect(planGrants(key, [], new Set([PARTNER]))).toEqual({ create: [], retire: [stale] });
  });
});

describe('readiness of copies shared with consumers', () => {
  it('is drifted (key access …) when the DR key lets the consumers not launch; check leaves it to a person', () => {
    const report = sharedWithPartner('check', { 'us-west-2': access('us-west-2'), 'eu-west-1': access('eu-west-1') });
    const cell = report.rows[0]!.cells[0]!;
    expect(cell).toMatchObject({ status: 'drifted', reason: `key access: ${PARTNER}, ${ORG}` });
    const plan = planReconciliation(report);
    expect(plan.repair).toEqual([]);
    expect(plan.manual.map((m) => m.reason)).toEqual([
      expect.stringContaining(`key access: ${PARTNER}, ${ORG}: the key policy of ${KEY_ARN['us-west-2']}`),
      expect.stringContaining(`key access: ${PARTNER}, ${ORG}: the key policy of ${KEY_ARN['eu-west-1']}`),
    ]);
  });

  it('with keyAccess grant, repairs accounts by grant and leaves the organization to a statement', () => {
    const report = sharedWithPartner('grant', {
      'us-west-2': access('us-west-2', { policy: ownerOnly('', [orgStatement]) }),
      'eu-west-1': access('eu-west-1'),
    });
    expect(report.rows[0]!.cells.map((c) => c.reason)).toEqual([
      `key access: ${PARTNER}`,
      `key access: ${PARTNER}, ${ORG}`,
    ]);
    const plan = planReconciliation(report);
    expect(plan.repair.map((r) => [r.region, r.keyAccess])).toEqual([
      ['us-west-2', { keyArn: KEY_ARN['us-west-2'], accounts: [PARTNER] }],
      ['eu-west-1', { keyArn: KEY_ARN['eu-west-1'], accounts: [PARTNER] }],
    ]);
    expect(plan.manual.map((m) => m.reason)).toEqual([expect.stringMatching(new RegExp(`^key access: ${ORG}:`))]);
  });

  it('is ready once every consumer may use the key; a copy under the wrong key is not held to it', () => {
    const allowed = access('us-west-2', { grants: [partnerGrant], policy: ownerOnly('', [orgStatement]) });
    const report = sharedWithPartner('check', { 'us-west-2': allowed, 'eu-west-1': allowed });
    expect(report.rows[0]!.cells.map((c) => c.status)).toEqual(['ready', 'ready']);
  });
});
