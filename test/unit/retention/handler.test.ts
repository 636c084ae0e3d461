import { readFileSync } from 'node:fs';
import { DescribeImagesCommand, EC2Client, EC2ServiceException } from '@aws-sdk/client-ec2';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import type { Context } from 'aws-lambda';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeAccount } from './fake-account.ts';
import { ACCOUNT, NOW, daysAgo, image, inventory } from './fixtures.ts';

const scheduled = JSON.parse(
  readFileSync(new URL('../../../events/scheduled-retention.json', import.meta.url), 'utf8'),
) as unknown;
const context = (remainingMs = 900_000) =>
  ({
    getRemainingTimeInMillis: () => remainingMs,
    functionName: 'retention',
    awsRequestId: 'r1',
  }) as unknown as Context;

const policyDoc = {
  regions: { sources: ['us-east-1'], dr: [{ region: 'us-west-2', kmsKeyId: 'alias/ami-dr' }] },
  retention: {
    sources: { deprecateAfterDays: 30, deregisterAfterDays: 90, keepLatest: 1 },
    replicas: { deprecateAfterDays: 30, deregisterAfterDays: 90, keepLatest: 1 },
  },
};

/** What the handler returns when invoked by hand (no `step`): the whole run in one invocation. */
interface WholeRun {
  regions: { region: string; counts: Record<string, number> }[];
  skipped: string[];
}

async function loadHandler() {
  vi.resetModules();
  vi.stubEnv('AMI_DR_POLICY', JSON.stringify(policyDoc));
  return import('../../../functions/retention.ts');
}

let account: FakeAccount;
const sts = mockClient(STSClient);
beforeEach(() => {
  // The handler plans for the real now; make that the fixtures' now.
  vi.useFakeTimers({ toFake: ['Date'], now: NOW });
  sts.reset();
  sts.on(GetCallerIdentityCommand).resolves({ Account: ACCOUNT });
  account = new FakeAccount([
    inventory([
      image({ imageId: 'ami-old', name: 'web-1', creationDate: daysAgo(200) }),
      image({ imageId: 'ami-mid', name: 'web-2', creationDate: daysAgo(45) }),
      image({ imageId: 'ami-new', name: 'web-3', creationDate: daysAgo(1) }),
    ]),
    inventory([], { region: 'us-west-2' }),
  ]);
});
afterEach(() => {
  vi.useRealTimers();
  account.restore();
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

describe('functions/retention handler', () => {
  it('runs every source and DR region, returns what it did and publishes the retention metrics', async () => {
    const { handler } = await loadHandler();
    const { metrics } = await import('../../../lib/observability.ts');
    const added: [string, number][] = [];
    vi.spyOn(metrics, 'addMetric').mockImplementation((name, _unit, value) => {
      added.push([name, value]);
      return metrics;
    });
    vi.spyOn(metrics, 'publishStoredMetrics').mockImplementation(() => metrics as never);
    const out = (await handler(scheduled, context())) as WholeRun;
    // The images are in us-east-1; us-west-2 has none.
    expect(out.regions.map((r) => r.region)).toEqual(['us-east-1', 'us-west-2']);
    expect(out.regions[0]?.counts).toMatchObject({ removed: 1, deprecated: 1, kept: 1 });
    expect(account.mutations.filter((m) => m.action === 'DeregisterImage').map((m) => m.id)).toEqual(['ami-old']);
    expect(added).toEqual([
      ['ImagesDeprecated', 1],
      ['ImagesRemoved', 1],
      ['GiBFreed', 8],
      ['RetentionErrors', 0],
    ]);
  });

  it('plans only when the event asks for a dry-run', async () => {
    const { handler } = await loadHandler();
    await handler({ ...(scheduled as object), dryRun: true }, context());
    expect(account.mutations).toEqual([]);
  });

  it('rejects a malformed event', async () => {
    const { handler } = await loadHandler();
    await expect(handler({ dryRun: 'yes' }, context())).rejects.toThrow(/dryRun/);
  });

  it('fails the invocation when a region cannot be inventoried, after running the others', async () => {
    const ec2 = mockClient(EC2Client);
    ec2.on(DescribeImagesCommand).rejects(
      new EC2ServiceException({
        name: 'UnauthorizedOperation',
        $fault: 'client',
        $metadata: {},
        message: 'not allowed',
      }),
    );
    const { handler } = await loadHandler();
    await expect(handler(scheduled, context())).rejects.toThrow(
      /retention failed in us-east-1 \(UnauthorizedOperation: not allowed\); us-west-2/,
    );
    ec2.restore();
  });

  it('leaves regions for the next run when the time budget is spent', async () => {
    const { handler } = await loadHandler();
    const out = (await handler(scheduled, context(10_000))) as WholeRun;
    expect(out.skipped).toEqual(['us-east-1', 'us-west-2']);
    expect(account.mutations).toEqual([]);
  });
});
