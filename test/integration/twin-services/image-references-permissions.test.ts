import { DescribeImagesCommand } from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, it } from 'vitest';
import { ec2Client } from '../../../lib/aws/clients.ts';
import { runRetentionEverywhere } from '../../../lib/workflows/retention.ts';
import { roleAccessKeyId } from '../../../local/runtime/roles.ts';
import { startLocalRuntime, type LocalRuntime } from '../../../local/runtime/runtime.ts';
import { ManualClock } from '../../../local/twin/clock.ts';
import type { PolicyStatement } from '../../../local/twin/iam.ts';
import { DAY, daysAgo, REGION, START, testPolicy } from '../retention/helpers.ts';

/**
 * DescribeImageReferences (called with IncludeAllResourceTypes) needs ssm:DescribeParameters, ssm:GetParameters and
 * Image Builder reads besides ec2:DescribeImageReferences (EC2 user guide, "ec2-ami-references"). Without them AWS
 * refuses the call; retention must report that and delete nothing it could not check.
 */
let rt: LocalRuntime | undefined;
afterEach(async () => {
  await rt?.stop();
  rt = undefined;
});

const reads = /^(ssm|imagebuilder):/;
const withoutReferenceReads = (statements: PolicyStatement[]): PolicyStatement[] =>
  statements.filter((s) => ![s.Action].flat().some((a) => reads.test(String(a))));

describe("the retention role and DescribeImageReferences' implied permissions", () => {
  it('without the SSM and Image Builder reads: the region fails with the access error and its aged image stays; with them it goes', async () => {
    const policy = testPolicy({ sources: { deregisterAfterDays: 90, keepLatest: 0 }, allowRemovingAll: true });
    const clock = new ManualClock(START);
    rt = await startLocalRuntime({ policy, clock, twinOptions: { s3: false } });
    const aged = rt.twin.seed.image(REGION, { name: 'old-1.0', creationDate: daysAgo(200) });
    const key = roleAccessKeyId('retention', REGION);
    const role = rt.twin.iam.principal(key);
    if (!role) throw new Error('the runtime attached no retention role');
    const run = () =>
      runRetentionEverywhere({
        clients: rt!.clientsFor('retention'),
        policy,
        regions: [REGION],
        now: clock.now(),
        clock: () => clock.now(),
        sleep: async (ms) => void clock.advance(ms),
        dryRun: false,
      });
    const exists = async () => {
      const out = await ec2Client(rt!.clients, REGION)
        .send(new DescribeImagesCommand({ ImageIds: [aged] }))
        .catch((e: Error) => (e.name === 'InvalidAMIID.NotFound' ? { Images: [] } : Promise.reject(e)));
      return (out.Images ?? []).some((i) => i.State !== 'deregistered');
    };

    rt.twin.iam.attach({ ...role, statements: withoutReferenceReads(role.statements) });
    const refused = await run();
    expect(refused.failures).toEqual([expect.objectContaining({ region: REGION, code: 'UnauthorizedOperation' })]);
    expect(refused.failures[0]?.message).toMatch(/ssm:DescribeParameters|ssm:GetParameters|imagebuilder:/);
    expect(await exists()).toBe(true);

    rt.twin.iam.attach(role);
    clock.advance(DAY);
    const allowed = await run();
    expect(allowed.failures).toEqual([]);
    expect(allowed.runs[0]?.report.removed.map((r) => r.imageId)).toEqual([aged]);
    expect(await exists()).toBe(false);
  });
});
