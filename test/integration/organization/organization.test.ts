import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { CreateImageCommand, DescribeImagesCommand, EC2Client, type Image } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePolicy, type Policy } from '../../../lib/domain/policy.ts';
import { s3Client } from '../../../lib/aws/clients.ts';
import { getJsonReport } from '../../../lib/aws/reports.ts';
import type { SavedPlan } from '../../../lib/domain/saved-plan.ts';
import type { ReadinessRunReport } from '../../../lib/workflows/scheduled-readiness.ts';
import type { RetentionRunReport } from '../../../lib/workflows/scheduled-retention.ts';
import type { ScheduledJob } from '../../../lib/workflows/units.ts';
import { startOrganizationTwins, type OrganizationTwins } from '../../../local/twin/accounts.ts';
import { ManualClock } from '../../../local/twin/clock.ts';
import { startLocalRuntime, type LocalRuntime } from '../../../local/runtime/runtime.ts';

/**
 * One deployment serving an organization: three member accounts under an OU with the member role deployed (as the
 * StackSet of deploy/member-account.yml would), a fourth without it. Images made in each member are copied into that
 * member's DR region; the scheduled state machines, as the home stack runs them (the functions' roles from
 * serverless.yml, enforced by the twin), list the accounts once per run: retention removes aged images in each
 * account, readiness reports every account in one report and re-drives their missing copies; the member without the
 * role is reported as such and the others are not held up by it.
 */
const START = Date.UTC(2026, 0, 1);
const DAY = 86_400_000;
const HOME = '111122223333';
const MEMBERS = ['222233334444', '333344445555', '444455556666'];
const NO_ROLE = '555566667777';
const SOURCE = 'us-east-1';
const DR = 'us-west-2';
const EXTERNAL_ID = 'ami-dr-test-external';
const ACCOUNTS = [HOME, ...MEMBERS, NO_ROLE];
const BUCKET = 'ami-dr-reports';

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
    identities: Object.fromEntries(all.map((a) => [`BUILDER${a}`, `arn:aws:sts::${a}:assumed-role/builder/pipeline`])),
  });
  for (const account of MEMBERS)
    org.organization.deployMemberRole(account, 'ami-dr-member', { trustedAccount: HOME, externalId: EXTERNAL_ID });
  for (const twin of org.all()) twin.seed.key(DR, { alias: 'ami-dr' });
  policy = parsePolicy({
    organization: { ous: [org.ous.get('workloads')], externalId: EXTERNAL_ID },
    selector: { includeTags: { family: 'golden' } },
    regions: { sources: [SOURCE], dr: [{ region: DR, kmsKeyId: 'alias/ami-dr' }] },
    retention: {
      sources: { deregisterAfterDays: 30, keepLatest: 1, family: { tag: 'family' } },
      reportBucket: BUCKET,
    },
  });
  rt = await startLocalRuntime({ policy, twin: org.home, memberTwins: org.members });
  await s3Client(rt.clients, SOURCE).send(new CreateBucketCommand({ Bucket: BUCKET }));
}, 60_000);

/** Starts the job's state machine for the clock's window, as the schedule does, and returns its run's report. */
async function runScheduled(job: ScheduledJob): Promise<unknown> {
  const started = await rt.startScheduled(job);
  await rt.stepFunctions.execution(started.executionArn)!.done;
  const execution = rt.stepFunctions.execution(started.executionArn)!;
  expect(execution.status).toBe('SUCCEEDED');
  return (JSON.parse(execution.output ?? 'null') as { report: unknown }).report;
}

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

  it('the scheduled retention machine removes aged images in every account, reporting the member without its role', async () => {
    for (const account of ACCOUNTS) {
      const twin = account === HOME ? org.home : org.members.get(account)!;
      const tags = { family: 'golden' };
      twin.seed.image(SOURCE, { name: `golden-new-${account}`, tags, creationDate: START - DAY });
      twin.seed.image(SOURCE, { name: `golden-old-${account}`, tags, creationDate: START - 90 * DAY });
    }
    const report = (await runScheduled('retention')) as RetentionRunReport;

    expect(report.accounts).toEqual([
      { account: HOME, status: 'ok' },
      ...MEMBERS.map((account) => ({ account, status: 'ok' })),
      expect.objectContaining({ account: NO_ROLE, status: 'role-missing' }),
    ]);
    expect(report.failures).toEqual([
      expect.objectContaining({ unit: { accountId: NO_ROLE, region: SOURCE }, error: 'MemberRoleMissingError' }),
      expect.objectContaining({ unit: { accountId: NO_ROLE, region: DR }, error: 'MemberRoleMissingError' }),
    ]);
    for (const account of [HOME, ...MEMBERS]) {
      const names = (await ownImages(account, SOURCE)).map((i) => i.Name).sort();
      const made = account === HOME ? [] : [`golden-${account}`];
      expect(names, account).toEqual([...made, `golden-new-${account}`].sort());
      expect(report.units.find((u) => u.accountId === account && u.region === SOURCE)).toMatchObject({
        status: 'done',
        removed: 1,
      });
    }
    expect(report.totals.removed).toBe(4);
    // The member without its role keeps everything.
    expect((await ownImages(NO_ROLE, SOURCE)).map((i) => i.Name)).toContain(`golden-old-${NO_ROLE}`);
    // Each member's part of the plan and its reports are its own, in the home account's bucket.
    for (const account of MEMBERS) {
      const location = report.planLocation!.replace(/plan\.json$/, `${account}/plan.json`);
      const plan = (await getJsonReport(s3Client(rt.clients, SOURCE), location)) as SavedPlan;
      expect(plan.accountId).toBe(account);
      expect(plan.plans.map((p) => p.region)).toEqual([SOURCE, DR]);
      const unit = report.units.find((u) => u.accountId === account && u.region === SOURCE)!;
      expect(unit.reportLocations[0]).toContain(`retention/${account}/${SOURCE}/`);
    }
  }, 120_000);

  it('the scheduled readiness machine lists every account in one report and re-drives each account’s missing copy', async () => {
    const report = (await runScheduled('readiness')) as ReadinessRunReport;

    expect(report.accounts).toEqual([
      { account: HOME, status: 'ok' },
      ...MEMBERS.map((account) => ({ account, status: 'ok' })),
      expect.objectContaining({ account: NO_ROLE, status: 'role-missing' }),
    ]);
    expect(report.failures).toEqual([
      expect.objectContaining({ unit: { accountId: NO_ROLE, region: SOURCE }, error: 'MemberRoleMissingError' }),
    ]);
    // Each account's golden-new was made while its event was lost: missing, and re-driven.
    expect(report.units.map((u) => [u.accountId, u.summary.images, u.summary.imagesNotReady, u.redriven])).toEqual([
      [HOME, 1, 1, 1],
      ...MEMBERS.map((account) => [account, 2, 1, 1]),
    ]);
    expect(report.summary).toMatchObject({ images: 7, imagesNotReady: 4 });

    // A member's re-drive ran in the member (its role, its DR key): the copy is the member's own.
    await rt.waitForIdle();
    for (const account of [HOME, ...MEMBERS]) {
      const source = (await ownImages(account, SOURCE)).find((i) => i.Name === `golden-new-${account}`)!;
      const copies = (await builder(account, DR).send(new DescribeImagesCommand({ Owners: ['self'] }))).Images ?? [];
      const copy = copies.find((i) =>
        i.Tags?.some((t) => t.Key === 'ami-dr:source-image-id' && t.Value === source.ImageId),
      );
      expect(copy?.State, account).toBe('available');
    }
    // The next run finds every account ready.
    clock.advance(30 * 60_000);
    const next = (await runScheduled('readiness')) as ReadinessRunReport;
    expect(next.summary).toMatchObject({ images: 7, imagesNotReady: 0 });
  }, 120_000);

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
