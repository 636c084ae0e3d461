import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DescribeImagesCommand,
  ModifyImageAttributeCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ec2Client } from '../../../lib/aws/clients.ts';
import { DRILL_TAG } from '../../../lib/domain/drill.ts';
import { parsePolicy, type Policy } from '../../../lib/domain/policy.ts';
import { runDrills, type DrillRun, type DrillRunOptions } from '../../../lib/workflows/drill.ts';
import { runReadiness } from '../../../lib/workflows/readiness.ts';
import { startLocalRuntime, type LocalRuntime } from '../../../local/runtime/runtime.ts';
import { PARTNER_ACCOUNT, seedAccount, type SeededAccount } from '../../../local/runtime/seed-account.ts';
import { ManualClock } from '../../../local/twin/clock.ts';

/**
 * Restore drills on the twin, under the drill role serverless.yml declares, on the seeded account: two families
 * (web, batch) with copies in two DR regions (us-west-2, eu-west-1).
 */

const ROOT = join(import.meta.dirname, '..', '..', '..');
const START = Date.UTC(2026, 0, 1);
const DR = ['us-west-2', 'eu-west-1'];

function examplePolicy(drill: Record<string, unknown> = {}): Readonly<Policy> {
  const document = parseYaml(readFileSync(join(ROOT, 'ami-dr.config.yml'), 'utf8')) as Record<string, unknown>;
  return parsePolicy({ ...document, drill: { enabled: true, ...drill } });
}

interface Setup {
  rt: LocalRuntime;
  clock: ManualClock;
  policy: Readonly<Policy>;
  account: SeededAccount;
}

let current: Setup | undefined;

async function setup(drill: Record<string, unknown> = {}): Promise<Setup> {
  const policy = examplePolicy(drill);
  const clock = new ManualClock(START);
  const rt = await startLocalRuntime({ policy, clock, twinOptions: { s3: false } });
  const account = seedAccount(rt.twin.seed, policy, clock.now());
  await rt.waitForIdle();
  current = { rt, clock, policy, account };
  return current;
}

afterEach(async () => {
  await current?.rt.stop();
  current = undefined;
});

const options = (s: Setup, extra: Partial<DrillRunOptions> = {}): DrillRunOptions => ({
  clients: s.rt.clientsFor('drill'),
  policy: s.policy,
  now: () => s.clock.now(),
  sleep: async (ms) => void s.clock.advance(ms),
  ...extra,
});

/** Drill instances (any account) in the DR regions that are not terminated. */
function drillInstancesLeft(s: Setup): string[] {
  return DR.flatMap((region) =>
    [...s.rt.twin.state.region(region).instances.values()]
      .filter((i) => i.tags.has(DRILL_TAG.drill) && i.state !== 'terminated')
      .map((i) => `${i.instanceId} ${i.state}`),
  );
}

async function copyTags(s: Setup, region: string, imageId: string): Promise<Record<string, string>> {
  const out = await ec2Client(s.rt.clients, region).send(new DescribeImagesCommand({ ImageIds: [imageId] }));
  return Object.fromEntries((out.Images?.[0]?.Tags ?? []).map((t) => [t.Key!, t.Value!]));
}

const byCell = (run: DrillRun) =>
  Object.fromEntries(
    run.report.results.map((r) => [`${r.family}@${r.region}`, r.failure ? `${r.outcome}: ${r.failure}` : r.outcome]),
  );

describe('restore drills on the twin', () => {
  it('drills the newest copy of each of two families in each of two DR regions, records each on its copy, leaves nothing running', async () => {
    const s = await setup();

    const run = await runDrills(options(s));

    expect(byCell(run)).toEqual({
      'web@us-west-2': 'passed',
      'web@eu-west-1': 'passed',
      'batch@us-west-2': 'passed',
      'batch@eu-west-1': 'passed',
    });
    // eu-west-1 never got web-1.4.0 (its event was lost): its newest web copy is web-1.3.0.
    expect(run.report.results.map((r) => `${r.name}@${r.region}`).sort()).toEqual([
      'batch-2026.01@eu-west-1',
      'batch-2026.01@us-west-2',
      'web-1.3.0@eu-west-1',
      'web-1.4.0@us-west-2',
    ]);
    for (const r of run.report.results) {
      expect(r).toMatchObject({ instanceType: 't3.nano', terminated: true });
      expect(await copyTags(s, r.region, r.copyImageId)).toMatchObject({
        [DRILL_TAG.outcome]: 'passed',
        [DRILL_TAG.drilledAt]: r.endedAt,
      });
    }
    expect(drillInstancesLeft(s)).toEqual([]);
    // Launched as the role allows: no public IP asked for, shutdown terminates, tagged from creation.
    const launched = [...s.rt.twin.state.region('us-west-2').instances.values()].filter((i) =>
      i.tags.has(DRILL_TAG.drill),
    );
    expect(launched.map((i) => i.shutdownBehavior)).toEqual(['terminate', 'terminate']);
    expect(s.rt.twin.iam.log.filter((d) => d.decision !== 'Allow').map((d) => d.request.action)).toEqual([]);

    // Readiness shows when each copy was last verified.
    s.clock.advance(3 * 86_400_000);
    const readiness = await runReadiness({
      clients: s.rt.clientsFor('readiness'),
      policy: s.policy,
      now: s.clock.now(),
      reconcile: false,
    });
    const drilled = new Set(run.report.results.map((r) => r.copyImageId));
    const verified = readiness.report.rows
      .flatMap((row) => row.cells)
      .filter((c) => c.copyImageId && drilled.has(c.copyImageId))
      .map((c) => c.verified);
    expect(verified).toEqual(Array(4).fill('verified 3 days ago'));
  });

  it('reports a copy that does not boot as failed (status check), with the reason, and terminates it', async () => {
    const s = await setup();
    s.rt.twin.faults.failBoots('eu-west-1');

    const run = await runDrills(options(s));

    expect(byCell(run)).toEqual({
      'web@us-west-2': 'passed',
      'web@eu-west-1': 'failed: status-check',
      'batch@us-west-2': 'passed',
      'batch@eu-west-1': 'failed: status-check',
    });
    const failed = run.report.results.find((r) => r.region === 'eu-west-1')!;
    expect(failed.reason).toMatch(/status checks failed .*instance impaired/);
    expect(await copyTags(s, 'eu-west-1', failed.copyImageId)).toMatchObject({
      [DRILL_TAG.outcome]: 'failed: status-check',
    });
    expect(run.report.summary).toMatchObject({ drills: 4, passed: 2, failed: 2 });
    expect(drillInstancesLeft(s)).toEqual([]);
  });

  it('fails a drill whose instance is not healthy within the launch timeout, and bills no more than the timeout', async () => {
    // Status checks initialize for 2 minutes after the instance runs: a 1-minute timeout ends first.
    const s = await setup({ maxDrills: 1, launchTimeoutMinutes: 1 });

    const run = await runDrills(options(s));

    expect(run.report.results).toEqual([
      expect.objectContaining({
        outcome: 'failed',
        failure: 'status-check',
        reason: expect.stringMatching(
          /^not running with passing status checks 1 minute after launch \(running, system initializing/,
        ),
        minutes: 1,
        terminated: true,
      }),
    ]);
    expect(drillInstancesLeft(s)).toEqual([]);
  });

  it('classifies a launch EC2 has no capacity for', async () => {
    const s = await setup();
    s.rt.twin.faults.noCapacity('us-west-2');

    const run = await runDrills(options(s));

    expect(byCell(run)).toEqual({
      'web@us-west-2': 'failed: capacity',
      'web@eu-west-1': 'passed',
      'batch@us-west-2': 'failed: capacity',
      'batch@eu-west-1': 'passed',
    });
    expect(run.report.results.find((r) => r.region === 'us-west-2')!.reason).toMatch(/InsufficientInstanceCapacity/);
    expect(drillInstancesLeft(s)).toEqual([]);
  });

  it('classifies an instance type the image cannot run on (policy override of another architecture)', async () => {
    const s = await setup({ instanceTypes: { x86_64: 't4g.nano' } });

    const run = await runDrills(options(s));

    expect(Object.values(byCell(run))).toEqual(Array(4).fill('failed: unsupported-type'));
    expect(run.report.results[0]!.reason).toMatch(/architecture 'arm64' of the specified instance type/);
    expect(drillInstancesLeft(s)).toEqual([]);
  });

  it('as a consumer account (AssumeRole): launches what is shared with it, and tells launch permission from key access', async () => {
    const s = await setup({ consumerRoleArn: `arn:aws:iam::${PARTNER_ACCOUNT}:role/ami-dr-drill` });
    // The seeded web copies are shared with the partner (and their keys let it launch); batch copies are not shared.
    const run = await runDrills(options(s));
    expect(byCell(run)).toEqual({
      'web@us-west-2': 'passed',
      'web@eu-west-1': 'passed',
      'batch@us-west-2': 'failed: launch-permission',
      'batch@eu-west-1': 'failed: launch-permission',
    });
    expect(run.report.results.every((r) => r.account === PARTNER_ACCOUNT)).toBe(true);
    expect(drillInstancesLeft(s)).toEqual([]);

    // Shared with the partner, but under a key that does not let it: the instance ends at once (key access).
    const batch = run.report.results.find((r) => r.family === 'batch' && r.region === 'us-west-2')!;
    const other = await setup({ consumerRoleArn: 'arn:aws:iam::444455556666:role/ami-dr-drill' });
    for (const region of DR) {
      const copies = await ec2Client(other.rt.clients, region).send(
        new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'tag:ami-dr:role', Values: ['replica'] }] }),
      );
      for (const image of copies.Images ?? [])
        await ec2Client(other.rt.clients, region).send(
          new ModifyImageAttributeCommand({
            ImageId: image.ImageId,
            LaunchPermission: { Add: [{ UserId: '444455556666' }] },
          }),
        );
    }
    await s.rt.stop();
    const keyRun = await runDrills(options(other));
    expect(Object.values(byCell(keyRun))).toEqual(Array(4).fill('failed: key-access'));
    expect(keyRun.report.results[0]!.reason).toMatch(/InvalidKMSKey/);
    expect(batch.reason).toMatch(/InvalidAMIID/);
    expect(drillInstancesLeft(other)).toEqual([]);
  });

  it('keeps to the budget: at most maxDrills drills and maxInstanceMinutes instance-minutes', async () => {
    const s = await setup({ maxDrills: 3, launchTimeoutMinutes: 10, maxInstanceMinutes: 25 });

    const run = await runDrills(options(s));

    // 25 minutes hold two 10-minute drills; the third would need 30.
    expect(run.report.results).toHaveLength(2);
    expect(run.report.skipped.map((x) => x.reason)).toEqual([
      'budget: at most 25 instance-minutes per run',
      'budget: at most 25 instance-minutes per run',
    ]);
    expect(run.report.summary.instanceMinutes).toBeLessThanOrEqual(25);
  });

  it('a run stopped by its deadline after launching terminates what it launched', async () => {
    const s = await setup();
    const deadline = new AbortController();

    const run = await runDrills(options(s, { signal: deadline.signal, onLaunched: () => deadline.abort() }));

    expect(run.report.summary).toMatchObject({ interrupted: 4, passed: 0, failed: 0 });
    expect(run.report.results.every((r) => r.terminated && r.instanceId)).toBe(true);
    expect(drillInstancesLeft(s)).toEqual([]);
    // An interrupted drill says nothing about the copy.
    expect(await copyTags(s, 'us-west-2', run.report.results[0]!.copyImageId)).not.toHaveProperty(DRILL_TAG.drilledAt);
  });

  it('a drill killed midway leaves its instance running; the next run terminates it first, when it is over an hour old', async () => {
    const s = await setup({ maxDrills: 1 });
    let launched: string | undefined;
    // The process dies right after the launch: nothing after it runs, not even the drill's finally.
    void runDrills(
      options(s, {
        onLaunched: (_, instanceId) => {
          launched = instanceId;
          return new Promise<void>(() => undefined);
        },
      }),
    );
    await expect.poll(() => launched, { timeout: 10_000 }).toBeDefined();
    s.clock.advance(10_000);
    expect(drillInstancesLeft(s)).toEqual([`${launched} running`]);

    // Within the hour it may still be a drill in flight: the next run leaves it alone.
    s.clock.advance(30 * 60_000);
    const early = await runDrills(options(s));
    expect(early.report.swept).toEqual([]);
    expect(drillInstancesLeft(s)).toEqual([`${launched} running`]);

    s.clock.advance(31 * 60_000);
    const next = await runDrills(options(s));
    expect(next.report.swept.map((x) => x.instanceId)).toEqual([launched]);
    expect(next.report.summary.passed).toBe(1);
    expect(drillInstancesLeft(s)).toEqual([]);
  });

  it('the drill role launches only ami-dr copies and terminates only drill instances', async () => {
    const s = await setup();
    const ec2 = (region: string) => ec2Client(s.rt.clientsFor('drill'), region);
    const source = s.account.sources[0]!;
    const tags = [{ ResourceType: 'instance' as const, Tags: [{ Key: DRILL_TAG.drill, Value: source.imageId }] }];

    await expect(
      ec2(source.region).send(
        new RunInstancesCommand({
          ImageId: source.imageId,
          InstanceType: 't3.nano',
          MinCount: 1,
          MaxCount: 1,
          TagSpecifications: tags,
        }),
      ),
    ).rejects.toMatchObject({ name: 'UnauthorizedOperation' });
    const [copy] = (
      await ec2('us-west-2').send(
        new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'tag:ami-dr:role', Values: ['replica'] }] }),
      )
    ).Images!;
    // A copy, but launched without the drill tag: refused.
    await expect(
      ec2('us-west-2').send(
        new RunInstancesCommand({ ImageId: copy!.ImageId, InstanceType: 't3.nano', MinCount: 1, MaxCount: 1 }),
      ),
    ).rejects.toMatchObject({ name: 'UnauthorizedOperation' });
    await expect(
      ec2(source.region).send(new TerminateInstancesCommand({ InstanceIds: [s.account.instances[0]!] })),
    ).rejects.toMatchObject({ name: 'UnauthorizedOperation' });
    expect(s.rt.twin.state.region(source.region).instances.get(s.account.instances[0]!)!.state).toBe('running');
  });
});
