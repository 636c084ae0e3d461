import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../local/twin/clock.ts';
import { createSeeder } from '../../../local/twin/seed.ts';
import { TwinState } from '../../../local/twin/state.ts';

function setup() {
  const state = new TwinState('000000000000');
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  return { state, clock, seed: createSeeder(state, clock) };
}

describe('twin state and seeding', () => {
  it('resolves a key by id, alias, key ARN and alias ARN, only in its own region', () => {
    const { state, seed } = setup();
    const { keyId, arn } = seed.key('us-west-2', { alias: 'ami-dr', state: 'Disabled' });

    for (const ref of [keyId, 'alias/ami-dr', arn, 'arn:aws:kms:us-west-2:000000000000:alias/ami-dr']) {
      expect(state.resolve('us-west-2', ref)).toEqual({ keyId, arn, state: 'Disabled' });
    }
    expect(state.resolve('eu-west-1', 'alias/ami-dr')).toBeUndefined();
    expect(state.resolve('eu-west-1', arn)).toBeUndefined();
    expect(arn).toBe(`arn:aws:kms:us-west-2:000000000000:key/${keyId}`);
  });

  it('seeds an EBS image with its snapshots, encrypted under the resolved key', () => {
    const { state, seed } = setup();
    const { arn } = seed.key('us-east-1', { alias: 'app' });
    const imageId = seed.image('us-east-1', { name: 'app-1', sizeGiB: 30, kmsKeyId: 'alias/app', tags: { team: 'a' } });

    const image = state.region('us-east-1').images.get(imageId);
    const snapshotId = image?.blockDeviceMappings[0]?.ebs?.snapshotId ?? '';
    expect(imageId).toMatch(/^ami-[0-9a-f]{17}$/);
    expect(snapshotId).toMatch(/^snap-[0-9a-f]{17}$/);
    expect(state.region('us-east-1').snapshots.get(snapshotId)).toMatchObject({
      volumeSize: 30,
      encrypted: true,
      kmsKeyId: arn,
    });
    expect(state.imagesUsingSnapshot('us-east-1', snapshotId)).toEqual([imageId]);
    expect(image?.tags.get('team')).toBe('a');
  });

  it('tracks a snapshot shared by two images until both are gone', () => {
    const { state, seed } = setup();
    const snapshotId = seed.snapshot('us-east-1', { sizeGiB: 10 });
    const a = seed.image('us-east-1', { name: 'a', snapshotIds: [snapshotId] });
    const b = seed.image('us-east-1', { name: 'b', snapshotIds: [snapshotId] });

    state.removeImage('us-east-1', a);
    expect(state.imagesUsingSnapshot('us-east-1', snapshotId)).toEqual([b]);
    state.removeImage('us-east-1', b);
    expect(state.imagesUsingSnapshot('us-east-1', snapshotId)).toEqual([]);
  });

  it('makes distinct ids', () => {
    const { state } = setup();
    const ids = new Set(Array.from({ length: 10_000 }, () => state.newId('ami')));
    expect(ids.size).toBe(10_000);
  });
});
