import { describe, expect, it } from 'vitest';
import { EventBus, type BusPolicyStatement, type TwinEvent } from '../../../local/twin/events.ts';
import { Iam } from '../../../local/twin/iam.ts';

/**
 * Cross-account delivery on the twin's EventBridge: a rule's target in another account's bus is put only when the
 * rule's role may `events:PutEvents` there and the receiving bus's resource policy lets the sending account put
 * that event, as AWS's default bus, which takes only its own account's events otherwise.
 */

const DR = '222222222222';
const PRODUCTION = '111111111111';
const BUS = `arn:aws:events:us-west-2:${PRODUCTION}:event-bus/default`;
const ROLE = `arn:aws:iam::${DR}:role/ami-dr-copy-events`;

const copyEvent = (overrides: Partial<TwinEvent> = {}): TwinEvent => ({
  version: '0',
  id: 'e-1',
  'detail-type': 'EC2 AMI State Change',
  source: 'aws.ec2',
  account: DR,
  time: '2026-01-01T00:00:00.000Z',
  region: 'us-west-2',
  resources: [],
  detail: { ImageId: 'ami-0123456789abcdef0', State: 'available' },
  ...overrides,
});

const busPolicy: BusPolicyStatement = {
  Sid: 'dr-account-copy-events',
  Effect: 'Allow',
  Principal: { AWS: [`arn:aws:iam::${DR}:root`] },
  Action: 'events:PutEvents',
  Resource: BUS,
  Condition: {
    'ForAllValues:StringEquals': { 'events:source': ['aws.ec2'] },
    StringEquals: { 'events:detail-type': 'EC2 AMI State Change' },
  },
};

function setup(rolePolicyResource = `arn:aws:events:*:${PRODUCTION}:event-bus/default`) {
  const bus = new EventBus();
  const iam = new Iam({});
  iam.defineRole({
    arn: ROLE,
    trust: [{ Effect: 'Allow', Action: 'sts:AssumeRole' }],
    statements: [{ Effect: 'Allow', Action: 'events:PutEvents', Resource: rolePolicyResource }],
  });
  return { bus, iam };
}

describe("the twin's cross-account event delivery", () => {
  it("refuses another account's event on a bus without a policy for it, and takes it once the policy allows it", () => {
    const { bus, iam } = setup();

    const refused = bus.putEventsFrom(copyEvent(), { busArn: BUS, roleArn: ROLE }, iam);
    bus.putPermission(BUS, busPolicy);
    const accepted = bus.putEventsFrom(copyEvent(), { busArn: BUS, roleArn: ROLE }, iam);
    bus.removePermission(BUS, busPolicy.Sid);
    const refusedAgain = bus.putEventsFrom(copyEvent(), { busArn: BUS, roleArn: ROLE }, iam);

    expect(refused).toMatchObject({ accepted: false, reason: expect.stringContaining('resource policy') });
    expect(accepted).toMatchObject({ accepted: true });
    expect(refusedAgain.accepted).toBe(false);
    expect(bus.crossAccount.map((p) => p.accepted)).toEqual([false, true, false]);
  });

  it('holds the event to the policy: other accounts, sources and detail types are refused', () => {
    const { bus, iam } = setup();
    bus.putPermission(BUS, busPolicy);
    const put = (event: TwinEvent) => bus.putEventsFrom(event, { busArn: BUS, roleArn: ROLE }, iam).accepted;

    expect(put(copyEvent({ account: '333333333333' }))).toBe(false);
    expect(put(copyEvent({ 'detail-type': 'AWS API Call via CloudTrail' }))).toBe(false);
    expect(put(copyEvent({ source: 'custom.app' }))).toBe(false);
    expect(put(copyEvent())).toBe(true);
  });

  it("refuses what the rule's role may not put, whatever the bus allows", () => {
    const { bus, iam } = setup(`arn:aws:events:*:999999999999:event-bus/default`);
    bus.putPermission(BUS, busPolicy);

    expect(bus.putEventsFrom(copyEvent(), { busArn: BUS, roleArn: ROLE }, iam)).toMatchObject({
      accepted: false,
      reason: expect.stringContaining('is not authorized to perform: events:PutEvents'),
    });
    expect(
      bus.putEventsFrom(copyEvent(), { busArn: BUS, roleArn: `arn:aws:iam::${DR}:role/missing` }, iam),
    ).toMatchObject({ accepted: false, reason: expect.stringContaining('does not exist') });
  });

  it("takes an account's own event on its own bus without any policy", () => {
    const { bus, iam } = setup(`arn:aws:events:*:${DR}:event-bus/default`);
    const own = `arn:aws:events:us-west-2:${DR}:event-bus/default`;

    expect(bus.putEventsFrom(copyEvent(), { busArn: own, roleArn: ROLE }, iam).accepted).toBe(true);
  });
});
