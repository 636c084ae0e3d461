import { describe, expect, it } from 'vitest';
import { readFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { drRegion, parsePolicy, policyVersion, PolicyError } from '../../../lib/domain/policy.ts';
import { loadPolicyFromEnv } from '../../../lib/config.ts';
import { loadPolicyFile } from '../../../lib/policy-file.ts';

const minimal = () => ({
  regions: { sources: ['us-east-1'], dr: [{ region: 'us-west-2', kmsKeyId: 'alias/ami-dr' }] },
});

function problemsOf(document: unknown): string[] {
  try {
    parsePolicy(document);
  } catch (error) {
    expect(error).toBeInstanceOf(PolicyError);
    return (error as PolicyError).problems;
  }
  throw new Error('policy was accepted');
}

describe('policy', () => {
  it.each(['eusc-de-east-1', 'us-gov-west-1', 'us-isob-east-1', 'cn-north-1', 'ap-southeast-7'])(
    'accepts the region name %s',
    (name) => {
      expect(parsePolicy({ ...minimal(), regions: { ...minimal().regions, sources: [name] } }).regions.sources).toEqual(
        [name],
      );
    },
  );

  it('fills defaults for a minimal policy and freezes the result', () => {
    const policy = parsePolicy(minimal());
    expect(policy.name).toBe('default');
    expect(policy.replication).toMatchObject({
      copyTags: true,
      copyLaunchPermissions: true,
      maxConcurrentRegions: 5,
      deadlineHours: 24,
    });
    expect(policy.retention).toMatchObject({
      enabled: true,
      protectInUse: true,
      keepReplicasOfLiveSources: true,
      dryRun: false,
    });
    expect(Object.isFrozen(policy.regions.dr)).toBe(true);
    expect(() => (policy.regions.dr as unknown as unknown[]).push({})).toThrow();
  });

  it('accepts the example policy shipped with the project', () => {
    const policy = parsePolicy(parseYaml(readFileSync('ami-dr.config.yml', 'utf8')));
    expect(policy.regions.dr.map((d) => d.region)).toEqual(['us-west-2', 'eu-west-1']);
    expect(drRegion(policy, 'eu-west-1')?.kmsKeyId).toBe('alias/ami-dr');
    expect(drRegion(policy, 'ap-south-1')).toBeUndefined();
  });

  it('accepts every form of KMS key reference', () => {
    for (const kmsKeyId of [
      'alias/ami-dr',
      '1234abcd-12ab-34cd-56ef-1234567890ab',
      'mrk-1234abcd12ab34cd56ef1234567890ab',
      'arn:aws:kms:us-west-2:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab',
      'arn:aws:kms:us-west-2:000000000000:alias/ami-dr',
    ]) {
      expect(() =>
        parsePolicy({ regions: { sources: ['us-east-1'], dr: [{ region: 'us-west-2', kmsKeyId }] } }),
      ).not.toThrow();
    }
  });

  it.each([
    [
      'an unknown region name',
      { regions: { sources: ['moon-1'], dr: [{ region: 'us-west-2', kmsKeyId: 'alias/k' }] } },
      'regions.sources.0: is not an AWS region name',
    ],
    ['no DR region', { regions: { sources: ['us-east-1'], dr: [] } }, 'regions.dr: needs at least one DR region'],
    [
      'no source region',
      { regions: { sources: [], dr: [{ region: 'us-west-2', kmsKeyId: 'alias/k' }] } },
      'regions.sources: needs at least one source region',
    ],
    ['a missing regions block', {}, 'regions:'],
    [
      'a DR region listed twice',
      {
        regions: {
          sources: ['us-east-1'],
          dr: [
            { region: 'us-west-2', kmsKeyId: 'alias/a' },
            { region: 'us-west-2', kmsKeyId: 'alias/b' },
          ],
        },
      },
      'regions.dr.1.region: us-west-2 is listed twice',
    ],
    [
      'a malformed key',
      { regions: { sources: ['us-east-1'], dr: [{ region: 'us-west-2', kmsKeyId: 'my key' }] } },
      'regions.dr.0.kmsKeyId: is not a KMS key id, alias or ARN',
    ],
    [
      'a DR region without a key',
      { regions: { sources: ['us-east-1'], dr: [{ region: 'us-west-2' }] } },
      'regions.dr.0.kmsKeyId',
    ],
    [
      'a short account id',
      { ...minimal(), replication: { addLaunchPermissions: { userIds: ['12345'] } } },
      'replication.addLaunchPermissions.userIds.0: is not a 12-digit AWS account id',
    ],
    [
      'a malformed organization ARN',
      { ...minimal(), replication: { addLaunchPermissions: { organizationArns: ['arn:aws:organizations::123'] } } },
      'replication.addLaunchPermissions.organizationArns.0: is not an organization ARN',
    ],
    [
      'a malformed OU ARN',
      { ...minimal(), replication: { addLaunchPermissions: { organizationalUnitArns: ['ou-1'] } } },
      'replication.addLaunchPermissions.organizationalUnitArns.0: is not an organizational unit ARN',
    ],
    [
      'public sharing of encrypted copies',
      { ...minimal(), replication: { addLaunchPermissions: { public: true } } },
      'replication.addLaunchPermissions.public: copies are encrypted',
    ],
    [
      'a copy duration off the 15-minute grid',
      { ...minimal(), replication: { copyCompletionMinutes: 20 } },
      'replication.copyCompletionMinutes: must be a multiple of 15',
    ],
    [
      'a copy duration too long',
      { ...minimal(), replication: { copyCompletionMinutes: 3000 } },
      'replication.copyCompletionMinutes: must be at most 2880',
    ],
    [
      'negative days',
      { ...minimal(), retention: { sources: { deprecateAfterDays: -3 } } },
      'retention.sources.deprecateAfterDays: must not be negative',
    ],
    [
      'fractional days',
      { ...minimal(), retention: { replicas: { deregisterAfterDays: 1.5, keepLatest: 1 } } },
      'retention.replicas.deregisterAfterDays: must be a whole number of days',
    ],
    [
      'deregistering before deprecating',
      { ...minimal(), retention: { sources: { deprecateAfterDays: 30, deregisterAfterDays: 10, keepLatest: 1 } } },
      'retention.sources.deregisterAfterDays: must not be less than deprecateAfterDays',
    ],
    [
      'removal with keepLatest 0 and no opt-in',
      { ...minimal(), retention: { sources: { deregisterAfterDays: 10 } } },
      'retention.sources.keepLatest: is 0',
    ],
    [
      'an empty family tag',
      { ...minimal(), retention: { sources: { family: { tag: '' } } } },
      'retention.sources.family.tag',
    ],
    [
      'a malformed SNS topic',
      { ...minimal(), notifications: { snsTopicArn: 'topic' } },
      'notifications.snsTopicArn: is not an SNS topic ARN',
    ],
    [
      'a deprecation further out than EC2 allows',
      { ...minimal(), retention: { sources: { deprecateAfterDays: 9007199254740991 } } },
      'retention.sources.deprecateAfterDays: must be at most 3650 (10 years',
    ],
    [
      'a deregistration age over the bound',
      { ...minimal(), retention: { replicas: { deregisterAfterDays: 3651, keepLatest: 1 } } },
      'retention.replicas.deregisterAfterDays: must be at most 3650',
    ],
    [
      'a keepLatest that keeps everything',
      { ...minimal(), retention: { sources: { keepLatest: 1e9 } } },
      'retention.sources.keepLatest: must be at most 1000',
    ],
    [
      'a DR region that is also a source region',
      {
        regions: {
          sources: ['us-east-1', 'us-west-2'],
          dr: [{ region: 'us-west-2', kmsKeyId: 'alias/a' }],
        },
      },
      'regions.dr.0.region: us-west-2 is also a source region',
    ],
    ['an empty document', null, '(policy): is empty'],
    ['an unknown field', { ...minimal(), replicaton: {} }, 'replicaton: is not a known field'],
    [
      'an unknown nested field',
      { ...minimal(), retention: { sources: { keepLast: 3 } } },
      'retention.sources.keepLast: is not a known field',
    ],
    ['a wrong type', { ...minimal(), replication: { copyTags: 'yes' } }, 'replication.copyTags:'],
    ['a policy that is not an object', 'regions: everywhere', '(policy):'],
  ])('rejects %s, naming the field', (_what, document, expected) => {
    const problems = problemsOf(document);
    expect(
      problems.some((p) => p.startsWith(expected)),
      problems.join('\n'),
    ).toBe(true);
  });

  it('lists every problem at once', () => {
    const problems = problemsOf({ regions: { sources: ['moon-1'], dr: [] }, replication: { maxConcurrentRegions: 0 } });
    expect(problems).toHaveLength(3);
  });

  it('allows removing everything only with an explicit opt-in', () => {
    const policy = parsePolicy({
      ...minimal(),
      retention: { allowRemovingAll: true, sources: { deregisterAfterDays: 10 } },
    });
    expect(policy.retention.sources.deregisterAfterDays).toBe(10);
  });

  it('versions a policy by content, not by key order', () => {
    const a = parsePolicy({ name: 'x', ...minimal() });
    const b = parsePolicy({ ...minimal(), name: 'x' });
    const c = parsePolicy({ ...minimal(), name: 'y' });
    expect(policyVersion(a)).toMatch(/^[0-9a-f]{8}$/);
    expect(policyVersion(a)).toBe(policyVersion(b));
    expect(policyVersion(a)).not.toBe(policyVersion(c));
  });
});

describe('policy loading', () => {
  it('reads the policy from AMI_DR_POLICY as JSON', () => {
    const policy = loadPolicyFromEnv({ AMI_DR_POLICY: JSON.stringify(minimal()) });
    expect(policy.regions.sources).toEqual(['us-east-1']);
  });

  it('names the variable when its JSON is broken or its policy is bad', () => {
    expect(() => loadPolicyFromEnv({ AMI_DR_POLICY: '{regions' })).toThrow(/AMI_DR_POLICY is not valid JSON/);
    expect(() => loadPolicyFromEnv({ AMI_DR_POLICY: '{}' })).toThrow(/AMI_DR_POLICY is invalid/);
  });

  it('needs AMI_DR_POLICY', () => {
    expect(() => loadPolicyFromEnv({})).toThrow(/AMI_DR_POLICY .* is not set/);
  });

  it('reads a YAML policy file and reports unreadable or malformed files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ami-dr-policy-'));
    const good = join(dir, 'good.yml');
    writeFileSync(good, 'regions:\n  sources: [us-east-1]\n  dr:\n    - { region: eu-west-1, kmsKeyId: alias/dr }\n');
    expect(loadPolicyFile(good).regions.dr[0]?.region).toBe('eu-west-1');
    const bad = join(dir, 'bad.yml');
    writeFileSync(bad, 'regions: [unclosed\n');
    expect(() => loadPolicyFile(bad)).toThrow(/is not valid YAML/);
    expect(() => loadPolicyFile(join(dir, 'missing.yml'))).toThrow(/cannot read policy file/);
  });

  it('reports a YAML syntax error on one line, with its line and column', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ami-dr-policy-'));
    const bad = join(dir, 'bad.yml');
    writeFileSync(bad, 'regions:\n  sources: [us-east-1]\n  dr: x: y\n');
    let message = '';
    try {
      loadPolicyFile(bad);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(new RegExp(`^policy file ${bad} is not valid YAML: line 3, column \\d+: \\S.*$`));
    expect(message).not.toContain('\n');
  });

  it('says an empty policy file is empty', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ami-dr-policy-'));
    for (const text of ['', '# nothing yet\n']) {
      const empty = join(dir, 'empty.yml');
      writeFileSync(empty, text);
      expect(() => loadPolicyFile(empty)).toThrow(
        `${empty} is invalid:\n  - (policy): the file is empty; a policy needs at least regions.sources and regions.dr`,
      );
    }
  });
});
