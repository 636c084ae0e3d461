import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { startHarness, type Harness } from './harness.ts';
import { stsClient } from '../../../lib/aws/clients.ts';

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
      const identity = await stsClient(twin.clients, region).send(new GetCallerIdentityCommand({}));
      expect(identity.Account).toBe(twin.accountId);
      expect(identity.Arn).toMatch(new RegExp(`^arn:aws:sts::${twin.accountId}:assumed-role/`));
      expect(identity.UserId).toMatch(/^AROA/);
    }
  });

  it('the caller follows the signing access key', async () => {
    const asService = new STSClient({
      region: 'us-east-1',
      endpoint: twin.endpoint,
      credentials: { accessKeyId: 'AMIDRLAMBDA', secretAccessKey: 'test' },
    });
    const identity = await asService.send(new GetCallerIdentityCommand({}));
    expect(identity.Arn).toBe(`arn:aws:sts::${twin.accountId}:assumed-role/ami-dr/AMIDRLAMBDA`);
    const builder = await stsClient(twin.clients, 'us-east-1').send(new GetCallerIdentityCommand({}));
    expect(builder.Arn).not.toBe(identity.Arn);
    asService.destroy();
  });
});
