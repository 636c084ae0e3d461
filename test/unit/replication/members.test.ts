import { DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { createClients, type Clients } from '../../../lib/aws/clients.ts';
import { checkSource, handleImageEvent } from '../../../lib/workflows/replication.ts';
import { ACCOUNT, policy, sample } from './fixtures.ts';

/** Organization reach in replication: a member's forwarded event is worked on in the member, with its clients. */
const MEMBER = '210987654321';
const IMAGE = 'ami-0d4e5f60718293a4b';
const SM_ARN = `arn:aws:states:us-east-1:${ACCOUNT}:stateMachine:ami-dr-dev-replicate`;
const ec2 = mockClient(EC2Client);
const sfn = mockClient(SFNClient);
const home = createClients({ credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
const member = createClients({ credentials: { accessKeyId: 'member', secretAccessKey: 'test' } });
const asked: string[] = [];
const clientsFor = async (account: string): Promise<Clients> => {
  asked.push(account);
  return member;
};

beforeEach(() => {
  ec2.reset();
  sfn.reset();
  asked.length = 0;
  ec2.on(DescribeImagesCommand).resolves({
    Images: [
      {
        ImageId: IMAGE,
        OwnerId: MEMBER,
        State: 'available',
        Name: 'golden',
        CreationDate: '2026-01-01T00:00:00.000Z',
        RootDeviceType: 'ebs',
      },
    ],
  });
  sfn.on(StartExecutionCommand).resolves({ executionArn: `${SM_ARN}:x`, startDate: new Date() });
});
afterAll(() => {
  ec2.restore();
  sfn.restore();
});

const deps = (isMember?: (a: string) => boolean) => ({
  clients: home,
  policy: policy(),
  accountId: ACCOUNT,
  stateMachineArn: SM_ARN,
  clientsFor,
  ...(isMember ? { isMember } : {}),
});

describe('a member account’s image event', () => {
  it('starts a replication that names the member, having read the image with the member’s clients', async () => {
    const outcome = await handleImageEvent(
      sample('cloudtrail-create-image-other-account.json'),
      deps((a) => a === MEMBER),
    );
    expect(outcome).toMatchObject({ action: 'started', imageId: IMAGE });
    expect(asked).toEqual([MEMBER]);
    const input = JSON.parse(sfn.commandCalls(StartExecutionCommand)[0]!.args[0].input.input!) as { source: unknown };
    expect(input.source).toEqual({ region: 'us-east-1', imageId: IMAGE, account: MEMBER });
  });

  it('is skipped as another account’s when the account is not a member', async () => {
    const outcome = await handleImageEvent(
      sample('cloudtrail-create-image-other-account.json'),
      deps(() => false),
    );
    expect(outcome).toMatchObject({ action: 'skipped', reason: 'another-account' });
    expect(sfn).not.toHaveReceivedCommand(StartExecutionCommand);
  });

  it('carries the account from CheckSource to the branches', async () => {
    const check = await checkSource({ source: { region: 'us-east-1', imageId: IMAGE, account: MEMBER } }, deps());
    expect(check.image).toMatchObject({ imageId: IMAGE, account: MEMBER });
    expect(asked).toEqual([MEMBER]);
  });
});
