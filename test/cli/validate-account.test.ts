import { describe, expect, it } from 'vitest';
import { accountProblems, type AccountFacts } from '../../lib/cli/commands/validate.ts';
import { parsePolicy } from '../../lib/domain/policy.ts';
import { source } from '../unit/readiness/fixtures.ts';

const policyWith = (replication: Record<string, unknown>) =>
  parsePolicy({
    regions: { sources: ['us-east-1'], dr: [{ region: 'us-west-2', kmsKeyId: 'alias/ami-dr' }] },
    replication,
  });

const facts = (publicSources: AccountFacts['publicSources']): AccountFacts => ({
  regions: [
    { name: 'us-east-1', optInStatus: 'opt-in-not-required' },
    { name: 'us-west-2', optInStatus: 'opt-in-not-required' },
  ],
  keys: {
    'us-west-2': {
      keyId: 'k',
      arn: 'arn:aws:kms:us-west-2:000000000000:key/k',
      state: 'Enabled',
      manager: 'CUSTOMER',
      spec: 'SYMMETRIC_DEFAULT',
    },
  },
  publicSources,
});

describe('validate: the policy against the account', () => {
  it('names a public in-scope EBS source whose launch permissions would be copied: replication refuses it', () => {
    const problems = accountProblems(
      policyWith({ copyLaunchPermissions: true }),
      facts([source('ami-open', { public: true })]),
    );
    expect(problems).toEqual([
      {
        field: 'selector',
        message: expect.stringMatching(/^ami-open \(us-east-1\) is in scope, but source is public/),
      },
    ]);
  });

  it('accepts a public EBS source when launch permissions are not copied (its copy stays private)', () => {
    expect(
      accountProblems(policyWith({ copyLaunchPermissions: false }), facts([source('ami-open', { public: true })])),
    ).toEqual([]);
  });

  it('accepts a public instance-store source (its copy is not encrypted) and an account that fits', () => {
    expect(
      accountProblems(policyWith({}), facts([source('ami-is', { public: true, rootDeviceType: 'instance-store' })])),
    ).toEqual([]);
  });
});
