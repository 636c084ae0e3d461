import { DescribeImagesCommand, DescribeSnapshotsCommand, type Image } from '@aws-sdk/client-ec2';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createClients, type Clients, ec2Client, s3Client } from '../../../lib/aws/clients.ts';
import { parsePolicy, type Policy } from '../../../lib/domain/policy.ts';
import { runRetention, type RunRetentionOptions } from '../../../lib/workflows/retention.ts';
import { ManualClock } from '../../../local/twin/clock.ts';
import { startTwin, type Twin, type TwinOptions } from '../../../local/twin/twin.ts';

export const REGION = 'us-east-1';
export const START = Date.UTC(2026, 5, 1, 12, 0, 0);
export const DAY = 86_400_000;
export const daysAgo = (days: number): number => START - days * DAY;

export interface RetentionHarness {
  twin: Twin;
  clock: ManualClock;
  clients: Clients;
  /** One retention run in REGION, on the twin's clock (pacing waits move the clock, not real time). */
  run(options?: Partial<RunRetentionOptions>): ReturnType<typeof runRetention>;
  images(): Promise<Image[]>;
  snapshotIds(): Promise<string[]>;
  objects(bucket: string): Promise<string[]>;
  stop(): Promise<void>;
}

export function testPolicy(retention: Record<string, unknown> = {}): Readonly<Policy> {
  const scope = { deprecateAfterDays: 30, deregisterAfterDays: 90, keepLatest: 1 };
  return parsePolicy({
    regions: { sources: [REGION], dr: [{ region: 'us-west-2', kmsKeyId: 'alias/ami-dr' }] },
    retention: { sources: scope, replicas: scope, ...retention },
  });
}

export async function retentionHarness(
  options: TwinOptions = {},
  policy = testPolicy(),
  clientOptions: { maxAttempts?: number } = {},
): Promise<RetentionHarness> {
  const clock = new ManualClock(START);
  const twin = await startTwin({ clock, ...options });
  const clients = createClients({
    endpoint: twin.endpoint,
    ...(twin.s3Endpoint ? { s3Endpoint: twin.s3Endpoint } : {}),
    ...clientOptions,
  });
  const ec2 = ec2Client(clients, REGION);
  return {
    twin,
    clock,
    clients,
    run: (extra = {}) =>
      runRetention({
        clients,
        policy,
        region: REGION,
        now: clock.now(),
        clock: () => clock.now(),
        sleep: async (ms) => void clock.advance(ms),
        dryRun: false,
        ...extra,
      }),
    images: async () => {
      const images: Image[] = [];
      let NextToken: string | undefined;
      do {
        const out = await ec2.send(
          new DescribeImagesCommand({
            Owners: ['self'],
            IncludeDeprecated: true,
            IncludeDisabled: true,
            MaxResults: 1000,
            NextToken,
          }),
        );
        images.push(...(out.Images ?? []));
        NextToken = out.NextToken;
      } while (NextToken);
      return images.filter((i) => i.State !== 'deregistered');
    },
    snapshotIds: async () => {
      const ids: string[] = [];
      let NextToken: string | undefined;
      do {
        const out = await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], MaxResults: 1000, NextToken }));
        ids.push(...(out.Snapshots ?? []).map((s) => s.SnapshotId ?? ''));
        NextToken = out.NextToken;
      } while (NextToken);
      return ids.sort();
    },
    objects: async (bucket) => {
      const out = await s3Client(clients, REGION).send(new ListObjectsV2Command({ Bucket: bucket }));
      return (out.Contents ?? []).map((o) => o.Key ?? '').sort();
    },
    stop: () => twin.stop(),
  };
}

/**
 * The deadline scenario, in real time on a twin of account 111122223333: `images` aged images of one family
 * (keepLatest 1 keeps the newest), EC2 throttling at 5% of AWS's rates and 30% of DeregisterImage calls failing
 * with 503, and one retention run with `budgetMs` to go. Returns the run and the wall time it took.
 */
export async function runUnderFaults(
  twin: Twin,
  budgetMs: number,
  images = 80,
): Promise<{ run: Awaited<ReturnType<typeof runRetention>>; tookMs: number }> {
  const now = Date.now();
  for (let i = 0; i < images; i++) twin.seed.image(REGION, { name: `app-1.${i}`, creationDate: now - (400 - i) * DAY });
  twin.faults.throttling(true, 0.05);
  twin.faults.unavailable('DeregisterImage', 0.3);
  const clients = createClients({
    endpoint: twin.endpoint,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  const started = Date.now();
  const run = await runRetention({
    clients,
    policy: testPolicy(),
    region: REGION,
    accountId: twin.accountId,
    dryRun: false,
    writeReport: false,
    deadline: started + budgetMs,
  });
  return { run, tookMs: Date.now() - started };
}
