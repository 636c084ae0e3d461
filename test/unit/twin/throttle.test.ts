import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../local/twin/clock.ts';
import { Throttler, throttleClass } from '../../../local/twin/throttle.ts';

describe('throttleClass', () => {
  it.each([
    ['CopyImage', {}, 'CopyImage'],
    ['DeregisterImage', {}, 'destructive'],
    ['ModifySnapshotAttribute', {}, 'destructive'],
    ['CreateTags', {}, 'tags'],
    ['DescribeImages', {}, 'describe'],
    ['DescribeSnapshots', { 'Owner.1': 'self' }, 'describe-unfiltered'],
    ['DescribeSnapshots', { MaxResults: '100' }, 'describe'],
    ['DescribeInstances', { 'Filter.1.Name': 'image-id' }, 'describe'],
    ['EnableImageDeprecation', {}, 'mutating'],
  ])('%s %j is %s', (action, params, cls) => {
    expect(throttleClass(action, params)).toBe(cls);
  });
});

describe('Throttler', () => {
  it('empties a scaled bucket, refills it with twin time, and keeps regions apart', () => {
    const clock = new ManualClock(0);
    const throttler = new Throttler(clock, { enabled: true, scale: 0.1 }); // CopyImage: burst 10, 0.1 per second
    const taken = Array.from({ length: 11 }, () => throttler.take('us-west-2', 'CopyImage'));
    const otherRegion = throttler.take('eu-west-1', 'CopyImage');
    clock.advance(10_000);
    const afterTen = throttler.take('us-west-2', 'CopyImage');
    const again = throttler.take('us-west-2', 'CopyImage');

    expect(taken.filter(Boolean)).toHaveLength(10);
    expect(taken[10]).toBe(false);
    expect(otherRegion).toBe(true);
    expect(afterTen).toBe(true);
    expect(again).toBe(false);
  });

  it('lets everything through when off', () => {
    const throttler = new Throttler(new ManualClock(0), { enabled: false });
    expect(Array.from({ length: 500 }, () => throttler.take('r', 'mutating')).every(Boolean)).toBe(true);
  });
});
