import { describe, expect, it } from 'vitest';
import {
  classifyFailure,
  describeVerification,
  drillMetrics,
  drillTags,
  drillVerification,
  instanceTypeFor,
  leftoverInstances,
  planDrills,
} from '../../../lib/domain/drill.ts';
import { drillRoleArn } from '../../../lib/domain/dr-account.ts';
import type { ImageRecord } from '../../../lib/domain/image.ts';
import { drillSettings, parsePolicy, policyVersion, type Policy } from '../../../lib/domain/policy.ts';
import { TAG } from '../../../lib/domain/tags.ts';

const NOW = Date.parse('2026-03-01T12:00:00Z');

function policy(drill?: Record<string, unknown>): Readonly<Policy> {
  return parsePolicy({
    regions: {
      sources: ['us-east-1'],
      dr: [
        { region: 'us-west-2', kmsKeyId: 'alias/ami-dr' },
        { region: 'eu-west-1', kmsKeyId: 'alias/ami-dr' },
      ],
    },
    retention: { replicas: { family: { tag: 'Family' } } },
    ...(drill ? { drill } : {}),
  });
}

let n = 0;
function copy(region: string, family: string, createdDaysAgo: number, extra: Partial<ImageRecord> = {}): ImageRecord {
  n++;
  return {
    imageId: `ami-${String(n).padStart(17, '0')}`,
    region,
    ownerId: '000000000000',
    name: `${family}-1.${n}`,
    state: 'available',
    creationDate: new Date(NOW - createdDaysAgo * 86_400_000).toISOString(),
    deregistrationProtection: false,
    rootDeviceType: 'ebs',
    public: false,
    productCodes: [],
    snapshots: [],
    tags: { [TAG.role]: 'replica', Family: family },
    architecture: 'x86_64',
    ...extra,
  };
}

describe('instanceTypeFor: the smallest type the architecture and boot mode allow', () => {
  it.each([
    ['x86_64', undefined, 't3.nano'],
    ['x86_64', 'legacy-bios', 't3.nano'],
    ['x86_64', 'uefi', 't3.nano'],
    ['x86_64', 'uefi-preferred', 't3.nano'],
    ['arm64', undefined, 't4g.nano'],
    ['arm64', 'uefi', 't4g.nano'],
    ['i386', 'legacy-bios', 't2.nano'],
  ])('%s / %s -> %s', (architecture, bootMode, expected) => {
    expect(instanceTypeFor(architecture, bootMode)).toEqual({ instanceType: expected });
  });

  it.each([
    ['arm64', 'legacy-bios', /do not boot legacy-bios/],
    ['i386', 'uefi', /do not boot uefi/],
    ['x86_64_mac', undefined, /Mac dedicated host/],
    ['arm64_mac', 'uefi', /Mac dedicated host/],
    ['sparc', undefined, /no instance type known/],
  ])('%s / %s cannot be launched on any type', (architecture, bootMode, reason) => {
    const choice = instanceTypeFor(architecture, bootMode);
    expect('unsupported' in choice && choice.unsupported).toMatch(reason);
  });

  it("takes the policy's type for the architecture, but never boots what the architecture cannot", () => {
    expect(instanceTypeFor('arm64', 'uefi', { arm64: 'm7g.medium' })).toEqual({ instanceType: 'm7g.medium' });
    expect(instanceTypeFor('x86_64', undefined, { arm64: 'm7g.medium' })).toEqual({ instanceType: 't3.nano' });
    expect(instanceTypeFor('arm64', 'legacy-bios', { arm64: 'm7g.medium' })).toHaveProperty('unsupported');
  });
});

describe('planDrills', () => {
  it('picks the newest available copy of each family in each DR region, newest first', () => {
    const p = policy({ enabled: true });
    const copies = [
      copy('us-west-2', 'web', 10),
      copy('us-west-2', 'web', 2),
      copy('us-west-2', 'web', 1, { state: 'pending' }),
      copy('eu-west-1', 'web', 5),
      copy('us-west-2', 'batch', 30),
      copy('us-east-1', 'web', 0), // not a DR region
      copy('eu-west-1', 'batch', 0, { tags: { Family: 'batch' } }), // not ami-dr's copy
    ];
    const plan = planDrills(copies, p, drillSettings(p));
    expect(plan.targets.map((t) => [t.region, t.family, t.copyImageId])).toEqual([
      ['us-west-2', 'web', copies[1]!.imageId],
      ['eu-west-1', 'web', copies[3]!.imageId],
      ['us-west-2', 'batch', copies[4]!.imageId],
    ]);
    expect(plan.skipped).toEqual([]);
    expect(plan.reservedMinutes).toBe(3 * 15);
  });

  it('stops at maxDrills, then at maxInstanceMinutes (each drill reserving its launch timeout), skipping the oldest', () => {
    const copies = ['a', 'b', 'c', 'd', 'e'].map((family, i) => copy('us-west-2', family, i));
    const byCount = policy({ maxDrills: 2 });
    const counted = planDrills(copies, byCount, drillSettings(byCount));
    expect(counted.targets.map((t) => t.family)).toEqual(['a', 'b']);
    expect(counted.skipped.map((s) => [s.family, s.reason])).toEqual([
      ['c', 'budget: at most 2 drills per run'],
      ['d', 'budget: at most 2 drills per run'],
      ['e', 'budget: at most 2 drills per run'],
    ]);

    const byMinutes = policy({ maxInstanceMinutes: 35, launchTimeoutMinutes: 10 });
    const timed = planDrills(copies, byMinutes, drillSettings(byMinutes));
    expect(timed.targets.map((t) => t.family)).toEqual(['a', 'b', 'c']);
    expect(timed.reservedMinutes).toBe(30);
    expect(timed.skipped.map((s) => s.reason)).toEqual(Array(2).fill('budget: at most 35 instance-minutes per run'));
  });

  it('reports a copy no type can boot without spending budget on it', () => {
    const p = policy({ maxDrills: 1 });
    const copies = [copy('us-west-2', 'mac', 0, { architecture: 'arm64_mac' }), copy('us-west-2', 'web', 1)];
    const plan = planDrills(copies, p, drillSettings(p));
    expect(plan.targets.map((t) => [t.family, t.instanceType, t.unsupported])).toEqual([
      ['mac', undefined, 'arm64_mac images need a Mac dedicated host'],
      ['web', 't3.nano', undefined],
    ]);
  });

  it('launches in the subnet and security groups the policy names for the region', () => {
    const p = policy({ network: { 'eu-west-1': { subnetId: 'subnet-0a1b2c3d', securityGroupIds: ['sg-0a1b2c3d'] } } });
    const plan = planDrills([copy('eu-west-1', 'web', 0), copy('us-west-2', 'web', 0)], p, drillSettings(p));
    expect(plan.targets.map((t) => [t.region, t.subnetId, t.securityGroupIds])).toEqual([
      ['eu-west-1', 'subnet-0a1b2c3d', ['sg-0a1b2c3d']],
      ['us-west-2', undefined, undefined],
    ]);
  });
});

describe('classifyFailure', () => {
  it.each([
    [
      { code: 'Client.InvalidKMSKey.InvalidState', message: 'The KMS key provided is in an incorrect state' },
      'key-access',
    ],
    [{ code: 'InvalidAMIID.NotFound', message: "The image id '[ami-1]' does not exist" }, 'launch-permission'],
    [
      { code: 'UnauthorizedOperation', message: 'You are not authorized to perform this operation.' },
      'launch-permission',
    ],
    [
      { code: 'InsufficientInstanceCapacity', message: 'We currently do not have sufficient t3.nano capacity' },
      'capacity',
    ],
    [{ code: 'VcpuLimitExceeded', message: 'You have requested more vCPU capacity' }, 'capacity'],
    [{ code: 'Unsupported', message: 'The requested configuration is currently not supported.' }, 'unsupported-type'],
    [
      {
        code: 'InvalidParameterValue',
        message: "The architecture 'arm64' of the specified instance type does not match",
      },
      'unsupported-type',
    ],
    [{ message: 'status checks failed (system ok, instance impaired)' }, 'status-check'],
    [{ code: 'Server.InternalError', message: 'Internal error on launch' }, 'status-check'],
  ])('%o -> %s', (signal, expected) => {
    expect(classifyFailure(signal)).toBe(expected);
  });
});

describe('what a drill records and what readiness shows', () => {
  it('tags the outcome with its class, and reads it back as days since', () => {
    const at = '2026-02-26T09:00:00.000Z';
    expect(drillTags('passed', undefined, at)).toEqual({ 'ami-dr:drilled-at': at, 'ami-dr:drill-outcome': 'passed' });
    const failed = drillTags('failed', 'key-access', at);
    expect(failed['ami-dr:drill-outcome']).toBe('failed: key-access');
    expect(describeVerification(drillVerification(drillTags('passed', undefined, at), NOW)!)).toBe(
      'verified 3 days ago',
    );
    expect(describeVerification(drillVerification(failed, NOW)!)).toBe('drill 3 days ago: failed: key-access');
    expect(describeVerification(drillVerification(drillTags('passed', undefined, '2026-03-01T01:00:00Z'), NOW)!)).toBe(
      'verified today',
    );
    expect(drillVerification({}, NOW)).toBeUndefined();
    expect(drillVerification({ 'ami-dr:drilled-at': 'yesterday' }, NOW)).toBeUndefined();
  });
});

describe('leftoverInstances', () => {
  it('terminates drill instances launched over an hour ago that are not already on their way out', () => {
    const ago = (minutes: number) => new Date(NOW - minutes * 60_000).toISOString();
    const instances = [
      { instanceId: 'i-old', launchTime: ago(61), state: 'running' },
      { instanceId: 'i-stopped', launchTime: ago(300), state: 'stopped' },
      { instanceId: 'i-young', launchTime: ago(59), state: 'running' },
      { instanceId: 'i-gone', launchTime: ago(300), state: 'terminated' },
      { instanceId: 'i-ending', launchTime: ago(300), state: 'shutting-down' },
    ];
    expect(leftoverInstances(instances, NOW).map((i) => i.instanceId)).toEqual(['i-old', 'i-stopped']);
  });
});

describe('drill policy', () => {
  it('is off unless asked for, weekly, and leaves the fingerprint of a policy without it unchanged', () => {
    const without = policy();
    expect(drillSettings(without)).toMatchObject({ enabled: false, schedule: 'rate(7 days)', maxDrills: 10 });
    expect(policyVersion(without)).toBe(policyVersion(policy()));
    expect(policyVersion(policy({ enabled: true }))).not.toBe(policyVersion(without));
  });

  it('names a bad field', () => {
    expect(() => policy({ maxDrills: 0, network: { 'us-west-2': { subnetId: 'net-1' } }, schedule: 'weekly' })).toThrow(
      /drill\.schedule: is not an EventBridge schedule expression[\s\S]*drill\.maxDrills[\s\S]*drill\.network\.us-west-2\.subnetId: is not a subnet id/,
    );
  });
});

describe('drills of a DR account', () => {
  it("assume the DR account's drill role: ami-dr-drill unless the region names another; none for the own account", () => {
    expect(drillRoleArn({ account: '222222222222' })).toBe('arn:aws:iam::222222222222:role/ami-dr-drill');
    expect(drillRoleArn({ account: '222222222222', drillRole: 'vault-drills' })).toBe(
      'arn:aws:iam::222222222222:role/vault-drills',
    );
    expect(drillRoleArn({})).toBeUndefined();
  });

  it('count a DR region that could not be reached as a failed drill in the metrics (the alarm fires)', () => {
    const metrics = drillMetrics({ drills: 2, passed: 2, failed: 0, unreached: 1, instanceMinutes: 4 });
    expect(metrics.find((m) => m.name === 'DrillsFailed')?.value).toBe(1);
    expect(metrics.find((m) => m.name === 'DrillsPassed')?.value).toBe(2);
  });
});
