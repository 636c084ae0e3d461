import { CopyImageCommand, EC2Client, paginateDescribeImages } from '@aws-sdk/client-ec2';
import { ManualClock } from '../../local/twin/clock.ts';
import { startTwin } from '../../local/twin/twin.ts';

/**
 * The twin at inventory scale: seeding 100,000 images (target: a few seconds), listing them all through the real
 * SDK with 1,000-image pages, and CopyImage calls per second against a large region.
 */
export async function bench(): Promise<Record<string, string | number>> {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const twin = await startTwin({ clock, s3: false });
  try {
    const count = 100_000;
    let started = performance.now();
    for (let i = 0; i < count; i++) {
      twin.seed.image('us-east-1', {
        name: `app-${i}`,
        tags: { app: `app-${i % 50}`, build: String(i) },
        creationDate: clock.now() - i * 60_000,
      });
    }
    const seedMs = performance.now() - started;

    const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
    const ec2 = new EC2Client({ region: 'us-east-1', endpoint: twin.endpoint, maxAttempts: 1, credentials });
    started = performance.now();
    let listed = 0;
    let pages = 0;
    for await (const page of paginateDescribeImages({ client: ec2, pageSize: 1000 }, { Owners: ['self'] })) {
      listed += page.Images?.length ?? 0;
      pages++;
    }
    const listMs = performance.now() - started;

    const copies = 200;
    const dr = new EC2Client({ region: 'us-west-2', endpoint: twin.endpoint, maxAttempts: 1, credentials });
    started = performance.now();
    const sources = [...twin.state.region('us-east-1').images.keys()].slice(0, copies);
    for (const [i, source] of sources.entries()) {
      await dr.send(new CopyImageCommand({ SourceRegion: 'us-east-1', SourceImageId: source, Name: `copy-${i}` }));
      if (i % 90 === 89) clock.advance(60_000);
    }
    const copyMs = performance.now() - started;

    return {
      'seed 100,000 images (s)': (seedMs / 1000).toFixed(2),
      'seeded images per second': Math.round(count / (seedMs / 1000)),
      'DescribeImages all, 1,000 per page (s)': (listMs / 1000).toFixed(2),
      'pages / images listed': `${pages} / ${listed}`,
      'CopyImage calls per second (us-west-2)': Math.round(copies / (copyMs / 1000)),
    };
  } finally {
    await twin.stop();
  }
}
