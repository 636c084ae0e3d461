import { describe, expect, it } from 'vitest';
import { matchesPattern, readRules } from '../../../local/runtime/runtime.ts';
import { sample } from './fixtures.ts';

describe('the onImageEvent rules in serverless.yml', () => {
  const { rules, maximumRetryAttempts } = readRules();
  const matched = (event: unknown) => rules.some((r) => matchesPattern(r.pattern, event));

  it('match the CloudTrail records and the available State Change, and nothing else', () => {
    for (const file of [
      'cloudtrail-create-image.json',
      'cloudtrail-copy-image.json',
      'cloudtrail-register-image.json',
      'cloudtrail-create-image-failed.json',
      'ami-state-change-available.json',
    ]) {
      expect(matched(sample(file)), file).toBe(true);
    }
    const failedState = {
      ...sample('ami-state-change-available.json'),
      detail: { ImageId: 'ami-0a1b2c3d4e5f60718', State: 'failed' },
    };
    expect(matched(failedState)).toBe(false);
    const deregister = sample('cloudtrail-create-image.json');
    expect(matched({ ...deregister, detail: { ...(deregister.detail as object), eventName: 'DeregisterImage' } })).toBe(
      false,
    );
  });

  it('bound the retries of a failing invocation', () => {
    expect(maximumRetryAttempts).toBeGreaterThanOrEqual(0);
    expect(maximumRetryAttempts).toBeLessThanOrEqual(2);
  });
});

describe('matchesPattern', () => {
  const event = {
    source: 'aws.ec2',
    detail: {
      eventName: 'CreateImage',
      tags: ['a', 'b'],
      userIdentity: { arn: 'arn:aws:sts::1:assumed-role/ami-dr-x/s' },
    },
  };
  it.each([
    [{ source: ['aws.ec2'] }, true],
    [{ source: ['aws.s3'] }, false],
    [{ detail: { eventName: [{ prefix: 'Create' }] } }, true],
    [{ detail: { eventName: [{ suffix: 'Image' }] } }, true],
    [{ detail: { eventName: [{ 'anything-but': ['CreateImage'] }] } }, false],
    [{ detail: { eventName: [{ 'anything-but': 'CopyImage' }] } }, true],
    [
      { detail: { userIdentity: { arn: [{ 'anything-but': { prefix: 'arn:aws:sts::1:assumed-role/ami-dr-' } }] } } },
      false,
    ],
    [{ detail: { errorCode: [{ exists: false }] } }, true],
    [{ detail: { errorCode: [{ exists: true }] } }, false],
    [{ detail: { tags: ['b'] } }, true],
    [{ detail: { eventName: [{ 'equals-ignore-case': 'createimage' }] } }, true],
    [{ detail: { missing: { deeper: ['x'] } } }, false],
  ])('%j => %s', (pattern, expected) => {
    expect(matchesPattern(pattern, event)).toBe(expected);
  });
});
