import {
  DescribeOrganizationCommand,
  ListAccountsCommand,
  ListAccountsForParentCommand,
  OrganizationsClient,
  paginateListAccounts,
} from '@aws-sdk/client-organizations';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrganizationTwins, type OrganizationTwins } from '../../../local/twin/accounts.ts';
import { ManualClock } from '../../../local/twin/clock.ts';
import { startTwin, type Twin } from '../../../local/twin/twin.ts';

/** The twin's Organizations and cross-account STS, through the real SDK clients, as AWS answers them. */
const HOME = '111122223333';
const WORKLOADS = Array.from({ length: 23 }, (_, i) => String(200000000000 + i));
let org: OrganizationTwins;
let lone: Twin;

const organizations = (endpoint: string, accessKeyId = 'test') =>
  new OrganizationsClient({ region: 'us-east-1', endpoint, credentials: { accessKeyId, secretAccessKey: 'test' } });

beforeAll(async () => {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  org = await startOrganizationTwins({ home: HOME, members: { workloads: WORKLOADS, sandbox: [] }, clock, s3: false });
  lone = await startTwin({ clock, s3: false });
});

afterAll(async () => {
  await org?.stop();
  await lone?.stop();
});

describe('the twin’s Organizations', () => {
  it('lists every account to the management account, 20 to a page', async () => {
    const client = organizations(org.home.endpoint);
    const first = await client.send(new ListAccountsCommand({}));
    expect(first.Accounts).toHaveLength(20);
    expect(first.NextToken).toBeDefined();
    const ids: string[] = [];
    for await (const page of paginateListAccounts({ client }, {})) ids.push(...(page.Accounts ?? []).map((a) => a.Id!));
    expect(ids.sort()).toEqual([HOME, ...WORKLOADS].sort());
    expect(first.Accounts?.[0]).toMatchObject({ Status: 'ACTIVE', State: 'ACTIVE' });
  });

  it('lists only the accounts directly under a parent, and refuses an unknown one', async () => {
    const client = organizations(org.home.endpoint);
    const sandbox = await client.send(new ListAccountsForParentCommand({ ParentId: org.ous.get('sandbox') }));
    expect(sandbox.Accounts).toEqual([]);
    const root = await client.send(new ListAccountsForParentCommand({ ParentId: org.organization.rootId }));
    expect(root.Accounts?.map((a) => a.Id)).toEqual([HOME]);
    await expect(client.send(new ListAccountsForParentCommand({ ParentId: 'ou-zz99-zzzzzzzz' }))).rejects.toMatchObject(
      { name: 'ParentNotFoundException' },
    );
  });

  it('answers AWSOrganizationsNotInUseException to an account in no organization', async () => {
    await expect(organizations(lone.endpoint).send(new DescribeOrganizationCommand({}))).rejects.toMatchObject({
      name: 'AWSOrganizationsNotInUseException',
    });
  });

  it('hands out a member role only as its trust allows, and the session works in the member', async () => {
    const member = WORKLOADS[0]!;
    const sts = new STSClient({
      region: 'us-east-1',
      endpoint: org.home.endpoint,
      credentials: { accessKeyId: 'AMIDRTEST', secretAccessKey: 'test' },
    });
    const RoleArn = `arn:aws:iam::${member}:role/ami-dr-member`;
    await expect(sts.send(new AssumeRoleCommand({ RoleArn, RoleSessionName: 'ami-dr' }))).rejects.toMatchObject({
      name: 'AccessDenied',
    });
    org.organization.deployMemberRole(member, 'ami-dr-member', { trustedAccount: HOME, externalId: 'secret-1' });
    await expect(
      sts.send(new AssumeRoleCommand({ RoleArn, RoleSessionName: 'ami-dr', ExternalId: 'wrong' })),
    ).rejects.toMatchObject({ name: 'AccessDenied' });
    const { Credentials: c } = await sts.send(
      new AssumeRoleCommand({ RoleArn, RoleSessionName: 'ami-dr', ExternalId: 'secret-1' }),
    );
    const session = new STSClient({
      region: 'us-east-1',
      endpoint: org.home.endpoint,
      credentials: {
        accessKeyId: c!.AccessKeyId!,
        secretAccessKey: c!.SecretAccessKey!,
        sessionToken: c!.SessionToken,
      },
    });
    expect(await session.send(new GetCallerIdentityCommand({}))).toMatchObject({
      Account: member,
      Arn: `arn:aws:sts::${member}:assumed-role/ami-dr-member/ami-dr`,
    });
  });
});
