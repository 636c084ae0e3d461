import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePolicy } from '../../../lib/domain/policy.ts';
import { startLocalRuntime, type LocalRuntime } from '../../../local/runtime/runtime.ts';

/** On the twin as on AWS: the scheduled functions are deployed in the home region only. */

const policy = parsePolicy({
  regions: { sources: ['us-east-1', 'eu-central-1'], dr: [{ region: 'us-west-2', kmsKeyId: 'alias/ami-dr' }] },
});

let byDefault: LocalRuntime;
let elsewhere: LocalRuntime;

beforeAll(async () => {
  byDefault = await startLocalRuntime({ policy });
  elsewhere = await startLocalRuntime({ policy, twin: byDefault.twin, homeRegion: 'eu-central-1', stage: 'other' });
});

afterAll(async () => {
  await elsewhere?.stop();
  await byDefault?.stop();
});

describe('local runtime: home region', () => {
  it('is the first source region unless given', () => {
    expect(byDefault.homeRegion).toBe('us-east-1');
    expect(elsewhere.homeRegion).toBe('eu-central-1');
  });

  it('runs retention and readiness under roles of the home region only', () => {
    for (const fn of ['retention', 'readiness'] as const) {
      expect(() => byDefault.clientsFor(fn)).not.toThrow();
      expect(() => byDefault.clientsFor(fn, 'eu-central-1')).toThrow(`gives ${fn} no role deployed in eu-central-1`);
      expect(() => elsewhere.clientsFor(fn, 'eu-central-1')).not.toThrow();
      expect(() => elsewhere.clientsFor(fn, 'us-east-1')).toThrow(`gives ${fn} no role deployed in us-east-1`);
    }
  });

  it('deploys replication in every source region', () => {
    for (const region of policy.regions.sources) {
      expect(() => byDefault.clientsFor('startCopy', region)).not.toThrow();
      expect(byDefault.stateMachineArn(region)).toContain(`:${region}:`);
    }
  });
});
