import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { startHarness, type Harness } from './harness.ts';

describe('twin STS', () => {
  let twin: Harness;
  beforeAll(async () => {
    twin = await startHarness();
  });
  afterAll(async () => {
    await twin.stop();
  });

  it('GetCallerIdentity names the twin account in every region', async () => {
    for (const region of ['us-east-1', 'eu-west-1']) {
      const identity = await twin.clients.sts(region).send(new GetCallerIdentityCommand({}));
      expect(identity.Account).toBe(twin.accountId);
      expect(identity.Arn).toMatch(new RegExp(`^arn:aws:iam::${twin.accountId}:user/`));
      expect(identity.UserId).toBeTruthy();
    }
  });
});
