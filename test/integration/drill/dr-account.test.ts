import { afterEach, describe, expect, it } from 'vitest';
import { evaluate, type PolicyStatement } from '../../../local/twin/iam.ts';
import { readDrAccountTemplate } from '../../../local/runtime/dr-account.ts';
import { DRILL_TAG } from '../../../lib/domain/drill.ts';
import { parsePolicy, type Policy } from '../../../lib/domain/policy.ts';
import { runDrills, type DrillRun, type DrillRunOptions } from '../../../lib/workflows/drill.ts';
import { runReadiness } from '../../../lib/workflows/readiness.ts';
import {
  DR_ACCOUNT,
  OWN_REGION,
  PRODUCTION,
  SOURCE,
  VAULT_REGION,
  drHarness,
  replicate,
  seedSource,
  vaultImages,
  type DrHarness,
} from '../dr-account/helpers.ts';

/**
 * Restore drills of copies an isolated DR account owns: us-west-2's copies are the DR account's (deployed from
 * deploy/dr-account.yml), eu-west-1's ami-dr's own. A DR account's copies are launched there, under its drill role,
 * as recovery would launch them.
 */

const DAY = 86_400_000;
const DRILL_ROLE = `arn:aws:iam::${DR_ACCOUNT}:role/ami-dr-drill`;

function policy(vault: Record<string, unknown> = {}, drill: Record<string, unknown> = {}): Readonly<Policy> {
  return parsePolicy({
    regions: {
      sources: [SOURCE],
      dr: [
        { region: VAULT_REGION, kmsKeyId: 'alias/ami-dr-vault', account: DR_ACCOUNT, ...vault },
        { region: OWN_REGION, kmsKeyId: 'alias/ami-dr' },
      ],
    },
    drill: { enabled: true, ...drill },
  });
}

let h: DrHarness | undefined;
afterEach(async () => {
  await h?.rt.stop();
  h = undefined;
});

/** A harness with one source replicated into both DR regions (the DR account's copy sealed). */
async function replicated(p = policy()): Promise<DrHarness> {
  h = await drHarness(p);
  await replicate(h, seedSource(h, 'web-1.0.0', h.sourceKey));
  await h.rt.waitForIdle();
  return h;
}

const options = (h: DrHarness, extra: Partial<DrillRunOptions> = {}): DrillRunOptions => ({
  clients: h.rt.clientsFor('drill'),
  policy: h.rt.policy,
  now: () => h.clock.now(),
  sleep: async (ms) => void h.clock.advance(ms),
  ...extra,
});

const byRegion = (run: DrillRun) =>
  Object.fromEntries(
    run.report.results.map((r) => [r.region, r.failure ? `${r.outcome}: ${r.failure}` : r.outcome] as const),
  );

/** Drill instances of any account, in either DR region, not terminated. */
function drillInstancesLeft(h: DrHarness): string[] {
  return [h.rt.twin.state, h.vault.state].flatMap((state) =>
    [VAULT_REGION, OWN_REGION].flatMap((region) =>
      [...state.region(region).instances.values()]
        .filter((i) => i.tags.has(DRILL_TAG.drill) && i.state !== 'terminated')
        .map((i) => `${i.instanceId} ${i.state}`),
    ),
  );
}

describe('restore drills of copies in an isolated DR account', () => {
  it("launches the DR account's copy there under its drill role, records the outcome on it, and readiness shows it verified", async () => {
    h = await replicated();
    const [copy] = vaultImages(h);

    const run = await runDrills(options(h));

    expect(byRegion(run)).toEqual({ [VAULT_REGION]: 'passed', [OWN_REGION]: 'passed' });
    const vault = run.report.results.find((r) => r.region === VAULT_REGION)!;
    expect(vault).toMatchObject({ copyImageId: copy!.imageId, account: DR_ACCOUNT, terminated: true });
    // The instance ran in the DR account, launched by its drill role's session, and is gone.
    const instance = h.vault.state.region(VAULT_REGION).instances.get(vault.instanceId!)!;
    expect(instance).toMatchObject({ state: 'terminated', imageId: copy!.imageId });
    expect([...h.rt.twin.state.region(VAULT_REGION).instances.values()]).toEqual([]);
    const launches = h.rt.twin.iam.log.filter(
      (d) => d.request.action === 'ec2:RunInstances' && d.request.resource.includes(copy!.imageId),
    );
    expect(launches.map((d) => h!.rt.twin.iam.principal(d.accessKeyId)?.arn)).toEqual([
      `arn:aws:sts::${DR_ACCOUNT}:assumed-role/ami-dr-drill/ami-dr`,
    ]);
    expect(drillInstancesLeft(h)).toEqual([]);
    // The sealed copy carries its drill record, and nothing else of it changed.
    expect(Object.fromEntries(copy!.tags)).toMatchObject({
      [DRILL_TAG.outcome]: 'passed',
      [DRILL_TAG.drilledAt]: vault.endedAt,
    });
    expect(copy!.tags.has('ami-dr:unsealed')).toBe(false);
    expect(copy!.deregistrationProtection).toBe('enabled-without-cooldown');
    expect(h.rt.twin.iam.log.filter((d) => d.decision !== 'Allow').map((d) => d.request)).toEqual([]);

    h.clock.advance(2 * DAY);
    const readiness = await runReadiness({
      clients: h.rt.clientsFor('readiness'),
      policy: h.rt.policy,
      now: h.clock.now(),
      reconcile: false,
    });
    const cells = readiness.report.rows.flatMap((row) => row.cells);
    expect(cells.find((c) => c.region === VAULT_REGION)).toMatchObject({
      status: 'ready',
      account: DR_ACCOUNT,
      copyImageId: copy!.imageId,
      verified: 'verified 2 days ago',
    });
    expect(cells.find((c) => c.region === OWN_REGION)).toMatchObject({ verified: 'verified 2 days ago' });
  });
});

/** The requests a DR account role's sessions made (its statements as deploy/dr-account.yml gives them). */
function sessionRequests(h: DrHarness, roleArn: string) {
  const roleName = roleArn.split('/').pop()!;
  return h.rt.twin.iam.log.filter((d) =>
    h.rt.twin.iam.principal(d.accessKeyId)?.arn.startsWith(`arn:aws:sts::${DR_ACCOUNT}:assumed-role/${roleName}/`),
  );
}

describe("the DR account's drill role", () => {
  it("launches in the DR account's subnet and security groups when drill.network names them for its region", async () => {
    const network = { subnetId: 'subnet-0a1b2c3d4e5f60718', securityGroupIds: ['sg-0a1b2c3d4e5f60718'] };
    h = await replicated(policy({}, { network: { [VAULT_REGION]: network } }));

    const run = await runDrills(options(h));

    expect(byRegion(run)).toEqual({ [VAULT_REGION]: 'passed', [OWN_REGION]: 'passed' });
    const launched = sessionRequests(h, DRILL_ROLE)
      .filter((d) => d.request.action === 'ec2:RunInstances')
      .map((d) => d.request.resource);
    expect(launched).toEqual(
      expect.arrayContaining([
        `arn:aws:ec2:${VAULT_REGION}:${DR_ACCOUNT}:subnet/${network.subnetId}`,
        `arn:aws:ec2:${VAULT_REGION}:${DR_ACCOUNT}:security-group/${network.securityGroupIds[0]}`,
      ]),
    );
  });

  it('needs each of its Allow statements: without any one, some call of a drill run is refused', async () => {
    h = await replicated();
    await runDrills(options(h));
    const requests = sessionRequests(h, DRILL_ROLE).map((d) => d.request);
    expect(requests.map((r) => r.action)).toEqual(
      expect.arrayContaining([
        'ec2:DescribeImages',
        'ec2:RunInstances',
        'ec2:DescribeInstanceStatus',
        'ec2:TerminateInstances',
        'ec2:CreateTags',
        'kms:Decrypt',
        'kms:CreateGrant',
      ]),
    );
    const role = h.rt.twin.iam.role(DRILL_ROLE)!;
    const unneeded = role.statements.flatMap((statement, i) => {
      if (statement.Effect !== 'Allow') return [];
      const without: PolicyStatement[] = role.statements.filter((_, j) => j !== i);
      return requests.every((r) => evaluate(without, r) === 'Allow') ? [statement.Sid ?? String(i)] : [];
    });
    expect(unneeded).toEqual([]);
  });
});

describe('a DR account the drills cannot reach', () => {
  it('fails only its regions, with the reason, when its drill role is missing; the other regions are drilled', async () => {
    h = await replicated();
    h.rt.twin.iam.removeRole(DRILL_ROLE);

    const run = await runDrills(options(h));

    expect(byRegion(run)).toEqual({ [OWN_REGION]: 'passed' });
    expect(run.report.unreached).toEqual([
      { region: VAULT_REGION, account: DR_ACCOUNT, roleArn: DRILL_ROLE, reason: expect.any(String) },
    ]);
    expect(run.report.unreached[0]!.reason).toContain(`cannot assume ${DRILL_ROLE}`);
    expect(run.report.unreached[0]!.reason).toContain('deploy deploy/dr-account.yml there');
    expect(run.report.summary).toMatchObject({ drills: 1, passed: 1, unreached: 1 });
    expect(drillInstancesLeft(h)).toEqual([]);
    // Nothing recorded on the DR account's copy: it was not drilled.
    expect(vaultImages(h)[0]!.tags.has(DRILL_TAG.drilledAt)).toBe(false);
  });

  it('fails only its regions, with the reason, when its drill role may not even look at the copies', async () => {
    h = await replicated();
    const role = h.rt.twin.iam.role(DRILL_ROLE)!;
    h.rt.twin.iam.defineRole({ ...role, statements: role.statements.filter((st) => st.Sid !== 'Read') });

    const run = await runDrills(options(h));

    expect(byRegion(run)).toEqual({ [OWN_REGION]: 'passed' });
    expect(run.report.unreached).toEqual([
      {
        region: VAULT_REGION,
        account: DR_ACCOUNT,
        roleArn: DRILL_ROLE,
        reason: expect.stringMatching(/^UnauthorizedOperation: .*ec2:DescribeInstances/),
      },
    ]);
    expect(drillInstancesLeft(h)).toEqual([]);
  });

  it("refuses a production role other than the drill function's (the role's trust), and a drill role not trusting this account", async () => {
    h = await replicated();
    // The DR account deployed the template for another production account: its drill role trusts only that one.
    const { roles } = readDrAccountTemplate({ accountId: DR_ACCOUNT, productionAccountId: '999988887777' });
    h.rt.twin.iam.defineRole(roles.find((r) => r.roleName === 'ami-dr-drill')!);

    const run = await runDrills(options(h));

    expect(byRegion(run)).toEqual({ [OWN_REGION]: 'passed' });
    expect(run.report.unreached.map((u) => u.region)).toEqual([VAULT_REGION]);
    expect(run.report.unreached[0]!.reason).toMatch(/AccessDenied.*sts:AssumeRole/);

    // As deployed for this account, the drill role trusts the drill function's role and no other ami-dr role.
    const trust = readDrAccountTemplate({ accountId: DR_ACCOUNT, productionAccountId: PRODUCTION }).roles.find(
      (r) => r.roleName === 'ami-dr-drill',
    )!.trust;
    const trusts = (principalArn: string) =>
      evaluate(
        trust.map((s) => ({ Resource: '*', ...s })),
        { action: 'sts:AssumeRole', resource: '*', context: { 'aws:PrincipalArn': principalArn } },
      );
    expect(trusts(`arn:aws:iam::${PRODUCTION}:role/ami-dr-prod-us-east-1-drill`)).toBe('Allow');
    expect(trusts(`arn:aws:iam::${PRODUCTION}:role/ami-dr-prod-us-east-1-startCopy`)).not.toBe('Allow');
  });
});

describe('failures of a drill in a DR account', () => {
  it('reports a drill whose outcome the DR account refuses to record, and still records the others', async () => {
    h = await replicated();
    // The DR account's drill role without the statement that lets it record the outcome on a copy.
    const role = h.rt.twin.iam.role(DRILL_ROLE)!;
    h.rt.twin.iam.defineRole({ ...role, statements: role.statements.filter((st) => st.Sid !== 'RecordDrillOutcome') });

    const run = await runDrills(options(h));

    expect(byRegion(run)).toEqual({ [VAULT_REGION]: 'passed', [OWN_REGION]: 'passed' });
    const vault = run.report.results.find((r) => r.region === VAULT_REGION)!;
    expect(vault.recordError).toMatch(/^UnauthorizedOperation: .*ec2:CreateTags/);
    expect(vaultImages(h)[0]!.tags.has(DRILL_TAG.drilledAt)).toBe(false);
    const own = run.report.results.find((r) => r.region === OWN_REGION)!;
    expect(own.recordError).toBeUndefined();
    expect(h.rt.twin.state.region(OWN_REGION).images.get(own.copyImageId)!.tags.get(DRILL_TAG.outcome)).toBe('passed');
    expect(drillInstancesLeft(h)).toEqual([]);
  });

  it("classifies a launch the DR account's key refuses as key-access, terminates it, and records it on the copy", async () => {
    h = await replicated();
    h.vault.state.region(VAULT_REGION).keys.get(h.vaultKey.split('/').pop()!)!.state = 'Disabled';

    const run = await runDrills(options(h));

    expect(byRegion(run)).toEqual({ [VAULT_REGION]: 'failed: key-access', [OWN_REGION]: 'passed' });
    expect(run.report.results.find((r) => r.region === VAULT_REGION)!.reason).toMatch(/InvalidKMSKey/);
    expect(vaultImages(h)[0]!.tags.get(DRILL_TAG.outcome)).toBe('failed: key-access');
    expect(drillInstancesLeft(h)).toEqual([]);

    // Enabled again, but under a key policy that lets only the replicator use it (no delegation to IAM): the drill
    // role's own permissions are not enough.
    const key = h.vault.state.region(VAULT_REGION).keys.get(h.vaultKey.split('/').pop()!)!;
    key.state = 'Enabled';
    const template = JSON.parse(
      readDrAccountTemplate({ accountId: DR_ACCOUNT, productionAccountId: PRODUCTION, region: VAULT_REGION }).keyPolicy,
    ) as { Statement: { Sid?: string }[] };
    key.policy = JSON.stringify({
      ...template,
      Statement: template.Statement.filter((st) => st.Sid !== 'AccountAdministers'),
    });
    h.clock.advance(60_000);

    const refused = await runDrills(options(h));

    expect(byRegion(refused)).toEqual({ [VAULT_REGION]: 'failed: key-access', [OWN_REGION]: 'passed' });
    expect(drillInstancesLeft(h)).toEqual([]);
  });

  it('leaves nothing running when the copy does not boot or the run is stopped midway', async () => {
    h = await replicated();
    h.rt.twin.faults.failBoots(VAULT_REGION);

    const failed = await runDrills(options(h));
    expect(byRegion(failed)).toEqual({ [VAULT_REGION]: 'failed: status-check', [OWN_REGION]: 'passed' });
    expect(drillInstancesLeft(h)).toEqual([]);

    const deadline = new AbortController();
    const stopped = await runDrills(options(h, { signal: deadline.signal, onLaunched: () => deadline.abort() }));
    expect(stopped.report.summary).toMatchObject({ interrupted: 2 });
    expect(stopped.report.results.every((r) => r.terminated)).toBe(true);
    expect(drillInstancesLeft(h)).toEqual([]);
  });

  it("a drill killed midway leaves its instance in the DR account; the next run's sweep terminates it there", async () => {
    h = await replicated();
    let launched: string | undefined;
    void runDrills(
      options(h, {
        onLaunched: (target, instanceId) => {
          if (target.region !== VAULT_REGION) return;
          launched = instanceId;
          return new Promise<void>(() => undefined);
        },
      }),
    );
    await expect.poll(() => launched, { timeout: 10_000 }).toBeDefined();
    h.clock.advance(10_000);
    // The own-account drill of that run goes on to its end; the DR account's instance is left running.
    await expect.poll(() => drillInstancesLeft(h!), { timeout: 10_000 }).toEqual([`${launched} running`]);

    h.clock.advance(61 * 60_000);
    const next = await runDrills(options(h));

    expect(next.report.swept).toEqual([
      { region: VAULT_REGION, account: DR_ACCOUNT, instanceId: launched, launchTime: expect.any(String) },
    ]);
    expect(drillInstancesLeft(h)).toEqual([]);
  });
});
