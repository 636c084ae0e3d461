import { describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { ListAccountsCommand, ListAccountsForParentCommand, OrganizationsClient } from '@aws-sdk/client-organizations';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { createClients, ec2Client } from '../../../lib/aws/clients.ts';
import { memberClients, MemberRoleMissingError } from '../../../lib/aws/member-clients.ts';
import { listOrganizationAccounts } from '../../../lib/aws/organizations.ts';
import { TokenBucketPacer } from '../../../lib/aws/pacer.ts';
import { accountOutcomes, memberAccounts, memberRoleArn } from '../../../lib/domain/organization.ts';
import { parsePolicy, PolicyError } from '../../../lib/domain/policy.ts';

const REGIONS = { sources: ['us-east-1'], dr: [{ region: 'us-west-2', kmsKeyId: 'alias/ami-dr' }] };
const OU = 'ou-ab12-cdefgh34';

function problems(document: Record<string, unknown>): string[] {
  try {
    parsePolicy({ regions: REGIONS, ...document });
  } catch (error) {
    return (error as PolicyError).problems;
  }
  return [];
}

describe('policy: accounts and organization', () => {
  it('accepts member accounts and OUs, defaulting the member role, and keeps old policies’ fingerprint fields absent', () => {
    const policy = parsePolicy({ regions: REGIONS, accounts: ['222233334444'], organization: { ous: [OU] } });
    expect(policy.organization).toEqual({ ous: [OU], memberRole: 'ami-dr-member' });
    expect(parsePolicy({ regions: REGIONS })).not.toHaveProperty('organization');
  });

  it('names each bad field', () => {
    expect(
      problems({
        accounts: ['1234', '222233334444', '222233334444'],
        organization: { ous: ['workloads'], memberRole: 'bad role', externalId: 'x', other: 1 },
      }),
    ).toEqual([
      'accounts.0: is not a 12-digit AWS account id',
      'organization.ous.0: is not an organizational unit id (ou-…) or root id (r-…)',
      'organization.memberRole: is not an IAM role name',
      'organization.externalId: must be 2-1224 letters, digits or +=,.@:/-_',
      'organization.other: is not a known field',
      'accounts.2: 222233334444 is listed twice',
    ]);
    expect(problems({ accounts: ['222233334444', '222233334444'] })).toEqual([
      'accounts.1: 222233334444 is listed twice',
    ]);
    expect(problems({ organization: { ous: [] } })).toEqual([
      'organization.ous: is empty; omit it to reach every account of the organization',
    ]);
  });
});

describe('memberAccounts', () => {
  it('joins listed and discovered active accounts, without the home account, each once', () => {
    const policy = parsePolicy({ regions: REGIONS, accounts: ['999988887777', '222233334444'], organization: {} });
    const discovered = [
      { id: '222233334444', state: 'ACTIVE' },
      { id: '333344445555', state: 'SUSPENDED' },
      { id: '444455556666', state: 'ACTIVE' },
      { id: '111122223333', state: 'ACTIVE' },
    ];
    expect(memberAccounts(policy, discovered, '111122223333')).toEqual([
      '222233334444',
      '444455556666',
      '999988887777',
    ]);
    expect(memberRoleArn(policy, '222233334444', 'aws-cn')).toBe('arn:aws-cn:iam::222233334444:role/ami-dr-member');
  });
});

describe('listOrganizationAccounts', () => {
  it('follows every page of each OU, paced, and reports each account’s state', async () => {
    const mock = mockClient(OrganizationsClient);
    mock
      .on(ListAccountsForParentCommand, { ParentId: OU })
      .resolvesOnce({ Accounts: [{ Id: '222233334444', State: 'ACTIVE' }], NextToken: 'p2' })
      .resolvesOnce({ Accounts: [{ Id: '333344445555', Status: 'SUSPENDED' }] });
    const pacer = new TokenBucketPacer({ limits: { describe: { burst: 5, refillPerSecond: 1 } } });
    const found = await listOrganizationAccounts(new OrganizationsClient({ region: 'us-east-1' }), [OU], pacer);
    expect(found).toEqual([
      { id: '222233334444', state: 'ACTIVE' },
      { id: '333344445555', state: 'SUSPENDED' },
    ]);
    expect(mock).toHaveReceivedNthCommandWith(ListAccountsForParentCommand, 2, { ParentId: OU, NextToken: 'p2' });
    expect(pacer.taken.describe).toBe(2);
    mock.restore();
  });

  it('lists the whole organization when no OU is named', async () => {
    const mock = mockClient(OrganizationsClient);
    mock.on(ListAccountsCommand).resolves({ Accounts: [{ Id: '222233334444', State: 'ACTIVE' }] });
    expect(await listOrganizationAccounts(new OrganizationsClient({ region: 'us-east-1' }), undefined)).toEqual([
      { id: '222233334444', state: 'ACTIVE' },
    ]);
    mock.restore();
  });
});

describe('memberClients', () => {
  const home = createClients({ credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  const options = {
    home,
    homeAccountId: '111122223333',
    region: 'us-east-1',
    roleArnOf: (a: string) => `arn:aws:iam::${a}:role/ami-dr-member`,
    externalId: 'ext-123',
  };

  it('assumes the member role once per account (session ami-dr, ExternalId) and uses its credentials', async () => {
    const sts = mockClient(STSClient);
    let now = Date.UTC(2026, 0, 1);
    sts.on(AssumeRoleCommand).resolves({
      Credentials: {
        AccessKeyId: 'ASIATEST',
        SecretAccessKey: 'test',
        SessionToken: 'token',
        Expiration: new Date(now + 3_600_000),
      },
    });
    const clientsFor = memberClients({ ...options, now: () => now });
    expect(await clientsFor('111122223333')).toBe(home);
    const member = await clientsFor('222233334444');
    expect(await clientsFor('222233334444')).toBe(member);
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 1);
    expect(sts).toHaveReceivedCommandWith(AssumeRoleCommand, {
      RoleArn: 'arn:aws:iam::222233334444:role/ami-dr-member',
      RoleSessionName: 'ami-dr',
      ExternalId: 'ext-123',
    });
    expect(await ec2Client(member, 'us-west-2').config.credentials()).toMatchObject({ accessKeyId: 'ASIATEST' });
    now += 56 * 60_000; // within 5 minutes of expiry: a new session
    await clientsFor('222233334444');
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 2);
    sts.restore();
  });

  it('reports a member whose role cannot be assumed as MemberRoleMissingError', async () => {
    const sts = mockClient(STSClient);
    sts.on(AssumeRoleCommand).rejects(Object.assign(new Error('not authorized'), { name: 'AccessDenied' }));
    const error = await memberClients(options)('222233334444').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MemberRoleMissingError);
    expect(error).toMatchObject({ account: '222233334444', name: 'MemberRoleMissingError' });
    sts.restore();
  });

  it('assumes the role once for units of one account starting side by side, and once again after a refusal', async () => {
    const sts = mockClient(STSClient);
    sts.on(AssumeRoleCommand).rejects(Object.assign(new Error('not authorized'), { name: 'AccessDenied' }));
    const clientsFor = memberClients(options);
    const both = await Promise.allSettled([clientsFor('222233334444'), clientsFor('222233334444')]);
    expect(both.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 1);
    // A refusal is not kept: the role may be deployed by the next run.
    await clientsFor('222233334444').catch(() => undefined);
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 2);
    sts.restore();
  });
});

describe('accountOutcomes', () => {
  const unit = (accountId: string, region: string) => ({ accountId, region });
  it('names each account of a run: ok, role-missing (its role refused) or failed (which regions)', () => {
    const outcomes = accountOutcomes(
      ['111122223333', '222233334444', '333344445555'],
      [
        { unit: unit('222233334444', 'us-east-1'), error: 'MemberRoleMissingError', cause: 'cannot assume' },
        { unit: unit('222233334444', 'us-west-2'), error: 'MemberRoleMissingError', cause: 'cannot assume' },
        { unit: unit('333344445555', 'us-west-2'), error: 'UnauthorizedOperation', cause: 'refused' },
      ],
    );
    expect(outcomes).toEqual([
      { account: '111122223333', status: 'ok' },
      { account: '222233334444', status: 'role-missing', message: 'cannot assume' },
      { account: '333344445555', status: 'failed', message: 'UnauthorizedOperation: refused (us-west-2)' },
    ]);
  });
});
