import { describe, expect, it } from 'vitest';
import { accountProblems, type AccountFacts } from '../../lib/cli/commands/validate.ts';
import { parsePolicy } from '../../lib/domain/policy.ts';
import { source } from '../unit/readiness/fixtures.ts';

const policyWith = (replication: Record<string, unknown>) =>
  parsePolicy({ regions: { sources: ['us-east-1'], dr: [{ region: 'us-west-2', kmsKeyId: 'alias/ami-dr' }] }, replication });

const facts = (publicSources: AccountFacts['publicSources']): AccountFacts => ({
  regions: [
    { name: 'us-east-1', optInStatus: 'opt-in-not-required' },
    { name: 'us-west-2', optInStatus: 'opt-in-not-required' },
  ],
  keys: { 'us-west-2': { keyId: 'k', arn: 'arn:aws:kms:us-west-2:000000000000:key/k', state: 'Enabled', manager: 'CUSTOMER', spec: 'SYMMETRIC_DEFAULT' } },
  publicSources,
});

describe('validate: the policy against the account', () => {
  it.each([true, false])('names a public in-scope EBS source, which replication refuses to copy (copyLaunchPermissions %s)', (copyLaunchPermissions) => {
    const problems = accountProblems(policyWith({ copyLaunchPermissions }), facts([source('ami-open', { public: true })]));
    expect(problems).toEqual([{ field: 'selector', message: expect.stringMatching(/^ami-open \(us-east-1\) is public and in scope/) }]);
  });

  it('accepts a public instance-store source (its copy is not encrypted) and an account that fits', () => {
    expect(accountProblems(policyWith({}), facts([source('ami-is', { public: true, rootDeviceType: 'instance-store' })]))).toEqual([]);
  });
});
