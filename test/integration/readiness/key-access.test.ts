import { DescribeInstanceStatusCommand, EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { KMSClient, ListGrantsCommand, RevokeGrantCommand } from '@aws-sdk/client-kms';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { afterEach, describe, expect, it } from 'vitest';
import type { Policy } from '../../../lib/domain/policy.ts';
import { runReadiness } from '../../../lib/workflows/readiness.ts';
import { copiesOf, createImage, DR, harness, testPolicy, type Harness } from '../replication/helpers.ts';

/**
 * Copies shared with a consumer account (111122223333) are ready only if that account can launch them, which for
 * an encrypted copy means using its DR key. On the twin, RunInstances from the copy as the consumer is the proof.
 */

const PARTNER = '111122223333';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

const sharedPolicy = (keyAccess: 'check' | 'grant'): Readonly<Policy> =>
  testPolicy({
    // The images the builder's instances run are not the ones to protect.
    selector: { excludeNamePatterns: ['*-base'] },
    replication: { keyAccess, addLaunchPermissions: { userIds: [PARTNER] } },
  });

async function replicated(policy: Readonly<Policy>): Promise<{ h: Harness; copies: Record<string, string> }> {
  const h = await harness({
    policy,
    twinOptions: { identities: { PARTNERADMIN: `arn:aws:iam::${PARTNER}:user/admin` } },
  });
  cleanups.push(() => h.rt.stop());
  const imageId = await createImage(h, 'app-1.0');
  await h.rt.waitForIdle();
  const copies: Record<string, string> = {};
  for (const region of DR) copies[region] = (await copiesOf(h, region, imageId))[0]!.ImageId!;
  return { h, copies };
}

const readiness = (h: Harness, policy: Readonly<Policy>, reconcile = false) =>
  runReadiness({
    clients: h.rt.clientsFor('readiness'),
    policy,
    now: h.rt.twin.clock.now(),
    reconcile,
    stateMachineArnFor: (r) => h.rt.stateMachineArn(r),
  });

const cells = (run: Awaited<ReturnType<typeof readiness>>) =>
  run.report.rows.flatMap((r) => r.cells).map((c) => [c.region, c.status, c.reason ?? '']);

/** Launches the copy as a role of the consumer account; the instance's state once EC2 settled it. */
async function launchAsPartner(h: Harness, region: string, imageId: string): Promise<string | undefined> {
  const sts = new STSClient({
    region,
    endpoint: h.rt.twin.endpoint,
    credentials: { accessKeyId: 'PARTNERADMIN', secretAccessKey: 'x' },
  });
  const assumed = await sts.send(
    new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${PARTNER}:role/launcher`, RoleSessionName: 'dr-test' }),
  );
  const ec2 = new EC2Client({
    region,
    endpoint: h.rt.twin.endpoint,
    maxAttempts: 1,
    credentials: {
      accessKeyId: assumed.Credentials!.AccessKeyId!,
      secretAccessKey: assumed.Credentials!.SecretAccessKey!,
      sessionToken: assumed.Credentials!.SessionToken!,
    },
  });
  const run = await ec2.send(new RunInstancesCommand({ ImageId: imageId, MinCount: 1, MaxCount: 1 }));
  const instanceId = run.Instances![0]!.InstanceId!;
  h.clock.advance(10_000);
  await h.rt.twin.settle();
  const status = await ec2.send(
    new DescribeInstanceStatusCommand({ InstanceIds: [instanceId], IncludeAllInstances: true }),
  );
  return status.InstanceStatuses?.[0]?.InstanceState?.Name;
}

describe('key access of copies shared with a consumer account', () => {
  it('keyAccess check: the consumer cannot launch the copy, readiness says drifted (key access) and leaves it to a person', async () => {
    const policy = sharedPolicy('check');
    const { h, copies } = await replicated(policy);

    const run = await readiness(h, policy, true);

    expect(cells(run)).toEqual(DR.map((region) => [region, 'drifted', `key access: ${PARTNER}`]));
    expect(run.reconciliation?.repaired).toEqual([]);
    expect(run.plan.manual.map((m) => m.reason)).toEqual(
      DR.map((region) => expect.stringContaining(`key access: ${PARTNER}: the key policy of ${h.keys[region]}`)),
    );
    expect(await launchAsPartner(h, 'us-west-2', copies['us-west-2']!)).toBe('terminated');
  });

  it('keyAccess grant: finalize grants the key, the consumer launches the copy, the cell is ready; a lost grant is given again', async () => {
    const policy = sharedPolicy('grant');
    const { h, copies } = await replicated(policy);
    const kms = new KMSClient({
      region: 'us-west-2',
      endpoint: h.rt.twin.endpoint,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    const grantsOf = async () =>
      (await kms.send(new ListGrantsCommand({ KeyId: h.keys['us-west-2'] }))).Grants!.filter(
        (g) => g.Name === `ami-dr-${PARTNER}`,
      );

    expect((await grantsOf()).map((g) => g.GranteePrincipal)).toEqual([`arn:aws:iam::${PARTNER}:root`]);
    expect(cells(await readiness(h, policy))).toEqual(DR.map((region) => [region, 'ready', '']));
    expect(await launchAsPartner(h, 'us-west-2', copies['us-west-2']!)).toBe('running');

    // Prepare: the grant is revoked behind ami-dr's back.
    await kms.send(new RevokeGrantCommand({ KeyId: h.keys['us-west-2'], GrantId: (await grantsOf())[0]!.GrantId }));
    const drifted = await readiness(h, policy, true);
    expect(cells(drifted)[0]).toEqual(['us-west-2', 'drifted', `key access: ${PARTNER}`]);
    expect(drifted.reconciliation?.repaired).toEqual([
      expect.objectContaining({ region: 'us-west-2', applied: ['key-access'] }),
    ]);
    expect(await grantsOf()).toHaveLength(1);
    expect(cells(await readiness(h, policy))).toEqual(DR.map((region) => [region, 'ready', '']));
    expect(await launchAsPartner(h, 'us-west-2', copies['us-west-2']!)).toBe('running');
  });
});
