import { CreateImageCommand, DescribeImagesCommand, EC2Client, type Image } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePolicy, type Policy } from '../../../lib/domain/policy.ts';
import { renderMarkdown, renderTable } from '../../../lib/report/index.ts';
import { resolveReach, runReadinessForAccounts, runRetentionForAccounts } from '../../../lib/workflows/organization.ts';
import { startOrganizationTwins, type OrganizationTwins } from '../../../local/twin/accounts.ts';
import { ManualClock } from '../../../local/twin/clock.ts';
import { startLocalRuntime, type LocalRuntime } from '../../../local/runtime/runtime.ts';

/**
 * One deployment serving an organization: three member accounts under an OU with the member role deployed (as the
 * StackSet of deploy/member-account.yml would), a fourth without it. Images made in each member are copied into that
 * member's DR region; one readiness report covers every member; retention removes aged images in each; the member
 * without the role is reported as such and the others are not held up by it.
 */
const START = Date.UTC(2026, 0, 1);
const DAY = 86_400_000;
const HOME = '111122223333';
const MEMBERS = ['222233334444', '333344445555', '444455556666'];
const NO_ROLE = '555566667777';
const SOURCE = 'us-east-1';
const DR = 'us-west-2';
const EXTERNAL_ID = 'ami-dr-test-external';

let org: OrganizationTwins;
let rt: LocalRuntime;
let policy: Readonly<Policy>;
const clock = new ManualClock(START);

const builder = (account: string, region: string) =>
  new EC2Client({
    region,
    endpoint: org.home.endpoint,
    credentials: { accessKeyId: `BUILDER${account}`, secretAccessKey: 'test' },
  });

async function ownImages(account: string, region: string): Promise<Image[]> {
  const out = await builder(account, region).send(
    new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'tag:family', Values: ['golden'] }] }),
  );
  return out.Images ?? [];
}

beforeAll(async () => {
  const all = [...MEMBERS, NO_ROLE];
  org = await startOrganizationTwins({
    home: HOME,
    members: { workloads: all },
    clock,
    s3: false,
    identities: Object.fromEntries(all.map((a) => [`BUILDER${a}`, `arn:aws:sts::${a}:assumed-role/builder/pipeline`])),
  });
  for (const account of MEMBERS)
    org.organization.deployMemberRole(account, 'ami-dr-member', { trustedAccount: HOME, externalId: EXTERNAL_ID });
  for (const twin of org.all()) twin.seed.key(DR, { alias: 'ami-dr' });
  policy = parsePolicy({
    organization: { ous: [org.ous.get('workloads')], externalId: EXTERNAL_ID },
    selector: { includeTags: { family: 'golden' } },
    regions: { sources: [SOURCE], dr: [{ region: DR, kmsKeyId: 'alias/ami-dr' }] },
    retention: { sources: { deregisterAfterDays: 30, keepLatest: 1, family: { tag: 'family' } } },
  });
  rt = await startLocalRuntime({ policy, twin: org.home, memberTwins: org.members });
}, 60_000);

afterAll(async () => {
  await rt?.stop();
  await org?.stop();
});

describe('organization reach on the twin', () => {
  const made = new Map<string, string>();

  it('copies an image made in each member into that member’s DR region', async () => {
    for (const account of MEMBERS) {
      const twin = org.members.get(account)!;
      const base = twin.seed.image(SOURCE, { name: 'base', sizeGiB: 8 });
      const instance = twin.seed.instance(SOURCE, { imageId: base });
      const out = await builder(account, SOURCE).send(
        new CreateImageCommand({
          InstanceId: instance,
          Name: `golden-${account}`,
          TagSpecifications: [{ ResourceType: 'image', Tags: [{ Key: 'family', Value: 'golden' }] }],
        }),
      );
      made.set(account, out.ImageId!);
    }
    await rt.waitForIdle();

    for (const account of MEMBERS) {
      const copies = (await builder(account, DR).send(new DescribeImagesCommand({ Owners: ['self'] }))).Images ?? [];
      const copy = copies.find((i) =>
        i.Tags?.some((t) => t.Key === 'ami-dr:source-image-id' && t.Value === made.get(account)),
      );
      expect(copy?.State, `copy in ${account}`).toBe('available');
      expect(copy?.OwnerId).toBe(account);
    }
    // Nothing was copied into the home account.
    const home = (await rt.clients.get(EC2Client, DR).send(new DescribeImagesCommand({ Owners: ['self'] }))).Images;
    expect(home ?? []).toEqual([]);
  }, 60_000);

  it('removes aged images in every member, reporting the member without the role and going on', async () => {
    for (const account of MEMBERS)
      org.members.get(account)!.seed.image(SOURCE, {
        name: `golden-old-${account}`,
        tags: { family: 'golden' },
        creationDate: START - 90 * DAY,
      });
    const reach = await resolveReach({ clients: rt.clients, policy, homeAccountId: HOME, now: () => clock.now() });
    expect(reach.members).toEqual([...MEMBERS, NO_ROLE].sort());

    const results = await runRetentionForAccounts(reach, {
      policy,
      clock: () => clock.now(),
      sleep: async (ms) => {
        clock.advance(ms);
      },
      writeReport: false,
    });

    expect(results.find((r) => r.account === NO_ROLE)?.outcome).toMatchObject({ status: 'role-missing' });
    for (const account of MEMBERS) {
      const result = results.find((r) => r.account === account);
      expect(result?.outcome.status).toBe('ok');
      expect(result?.retention?.runs.every((run) => run.report.accountId === account)).toBe(true);
      const names = (await ownImages(account, SOURCE)).map((i) => i.Name);
      expect(names, account).toEqual([`golden-${account}`]);
    }
  }, 60_000);

  it('reports readiness of every member in one report, naming each account', async () => {
    const reach = await resolveReach({ clients: rt.clients, policy, homeAccountId: HOME, now: () => clock.now() });
    const { report } = await runReadinessForAccounts(reach, { policy, now: clock.now(), reconcile: false });

    expect(report.accounts).toEqual([
      { account: HOME, status: 'ok' },
      ...MEMBERS.map((account) => ({ account, status: 'ok' })),
      expect.objectContaining({ account: NO_ROLE, status: 'role-missing' }),
    ]);
    expect(report.rows.map((r) => [r.account, r.sourceImageId, r.cells[0]?.status])).toEqual(
      MEMBERS.map((account) => [account, made.get(account), 'ready']),
    );
    expect(report.summary).toMatchObject({ images: 3, readyRatio: 1 });
    const table = renderTable(report, { color: false });
    for (const account of MEMBERS) {
      expect(table).toContain(account);
      expect(renderMarkdown(report)).toContain(`account ${account}`);
    }
  }, 60_000);

  it('answers Organizations as AWS does: members may not list the accounts', async () => {
    const { OrganizationsClient, ListAccountsCommand, DescribeOrganizationCommand } =
      await import('@aws-sdk/client-organizations');
    const member = new OrganizationsClient({
      region: 'us-east-1',
      endpoint: org.home.endpoint,
      credentials: { accessKeyId: `BUILDER${MEMBERS[0]}`, secretAccessKey: 'test' },
    });
    await expect(member.send(new ListAccountsCommand({}))).rejects.toMatchObject({ name: 'AccessDeniedException' });
    const described = await member.send(new DescribeOrganizationCommand({}));
    expect(described.Organization?.MasterAccountId).toBe(HOME);
  });
});
