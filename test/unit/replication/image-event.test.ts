import { describe, expect, it } from 'vitest';
import { MalformedEventError, parseImageEvent } from '../../../lib/domain/image-event.ts';
import { sample } from './fixtures.ts';

describe('parseImageEvent', () => {
  it.each([
    ['cloudtrail-create-image.json', 'CreateImage', 'ami-0a1b2c3d4e5f60718'],
    ['cloudtrail-copy-image.json', 'CopyImage', 'ami-0b2c3d4e5f6071829'],
    ['cloudtrail-register-image.json', 'RegisterImage', 'ami-0c3d4e5f607182930'],
  ])('reads the CloudTrail record in %s', (file, eventName, imageId) => {
    const event = parseImageEvent(sample(file));
    expect(event).toMatchObject({ kind: 'api-call', eventName, imageId, region: 'us-east-1', account: '123456789012' });
    expect(event.callerArn).toMatch(/^arn:aws:sts::123456789012:assumed-role\//);
    expect(event.callerRoleArn).toMatch(/^arn:aws:iam::123456789012:role\//);
  });

  it('keeps the error code of a failed call, which names no image', () => {
    const event = parseImageEvent(sample('cloudtrail-create-image-failed.json'));
    expect(event).toMatchObject({ kind: 'api-call', errorCode: 'InvalidAMIName.Duplicate' });
    expect(event.imageId).toBeUndefined();
  });

  it('reads the account of a record from another account', () => {
    expect(parseImageEvent(sample('cloudtrail-create-image-other-account.json')).account).toBe('210987654321');
  });

  it('reads an AMI State Change', () => {
    expect(parseImageEvent(sample('ami-state-change-available.json'))).toMatchObject({
      kind: 'state-change',
      imageId: 'ami-0a1b2c3d4e5f60718',
      state: 'available',
    });
  });

  it('rejects the malformed sample with a MalformedEventError naming the bad fields', () => {
    let error: unknown;
    try {
      parseImageEvent(sample('malformed-create-image.json'));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(MalformedEventError);
    expect((error as Error).name).toBe('MalformedEventError');
    expect((error as MalformedEventError).problems.join('\n')).toMatch(
      /detail\.responseElements\.imageId: is not an image id/,
    );
  });

  it.each([
    ['not an object', null],
    [
      'an unknown detail-type',
      { ...sample('ami-state-change-available.json'), 'detail-type': 'EC2 Instance State-change Notification' },
    ],
    ['another source', { ...sample('ami-state-change-available.json'), source: 'aws.s3' }],
    [
      'a state change without image id',
      { ...sample('ami-state-change-available.json'), detail: { State: 'available' } },
    ],
    ['a bad account', { ...sample('cloudtrail-create-image.json'), account: '12345' }],
    [
      'an unsupported call',
      {
        ...sample('cloudtrail-create-image.json'),
        detail: { ...(sample('cloudtrail-create-image.json').detail as object), eventName: 'DeregisterImage' },
      },
    ],
  ])('rejects %s', (_, raw) => {
    expect(() => parseImageEvent(raw)).toThrow(MalformedEventError);
  });

  it('rejects a successful call that names no image', () => {
    const raw = sample('cloudtrail-create-image.json');
    const detail = { ...(raw.detail as Record<string, unknown>), responseElements: null };
    expect(() => parseImageEvent({ ...raw, detail })).toThrow(/names the image it made/);
  });
});
