import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { XMLParser } from 'fast-xml-parser';
import { startS3, seedBundle, type S3Server } from '../../../local/twin/s3.ts';
import { createClients, s3Client } from '../../../lib/aws/clients.ts';
import { errorName } from './errors.ts';

describe('twin S3 (s3rver)', () => {
  let server: S3Server;
  let s3: S3Client;
  beforeAll(async () => {
    server = await startS3();
    s3 = s3Client(createClients({ s3Endpoint: server.endpoint, maxAttempts: 1 }), 'us-east-1');
  });
  afterAll(async () => {
    await server.stop();
  });

  it('listens on 127.0.0.1 and stores objects through the real SDK client', async () => {
    expect(server.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await s3.send(new CreateBucketCommand({ Bucket: 'plain' }));
    await s3.send(new PutObjectCommand({ Bucket: 'plain', Key: 'a/b.txt', Body: 'hello' }));
    const got = await s3.send(new GetObjectCommand({ Bucket: 'plain', Key: 'a/b.txt' }));
    // Checksum framing off: the stored bytes are the bytes sent.
    expect(await got.Body?.transformToString()).toBe('hello');
    expect(await errorName(s3.send(new GetObjectCommand({ Bucket: 'plain', Key: 'missing' })))).toBe('NoSuchKey');
    expect(await errorName(s3.send(new GetObjectCommand({ Bucket: 'no-such-bucket', Key: 'x' })))).toBe('NoSuchBucket');
  });

  it('seedBundle writes a manifest in the AMI tools format and every part it lists', async () => {
    const bundle = await seedBundle(s3, 'ami-bundles', 'web/2026-01-01', 3);
    expect(bundle.imageLocation).toBe('ami-bundles/web/2026-01-01/image.manifest.xml');
    const manifest = await s3.send(
      new GetObjectCommand({ Bucket: 'ami-bundles', Key: 'web/2026-01-01/image.manifest.xml' }),
    );
    const parsed = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@' }).parse(
      (await manifest.Body?.transformToString()) ?? '',
    ) as {
      manifest: { image: { parts: { '@count': string; part: { '@index': string; filename: string }[] } } };
    };
    const parts = parsed.manifest.image.parts;
    expect(parts['@count']).toBe('3');
    expect(parts.part.map((p) => [p['@index'], p.filename])).toEqual([
      ['0', 'image.part.00'],
      ['1', 'image.part.01'],
      ['2', 'image.part.02'],
    ]);
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'ami-bundles', Prefix: 'web/2026-01-01/' }));
    expect(listed.Contents?.map((o) => o.Key).sort()).toEqual(
      ['image.manifest.xml', 'image.part.00', 'image.part.01', 'image.part.02'].map((f) => `web/2026-01-01/${f}`),
    );
    expect(bundle.partKeys).toEqual([
      'web/2026-01-01/image.part.00',
      'web/2026-01-01/image.part.01',
      'web/2026-01-01/image.part.02',
    ]);
  });

  it('a second bundle in the same bucket leaves the first untouched', async () => {
    await seedBundle(s3, 'ami-bundles', 'db', 2);
    await s3.send(new DeleteObjectCommand({ Bucket: 'ami-bundles', Key: 'db/image.part.00' }));
    const first = await s3.send(new ListObjectsV2Command({ Bucket: 'ami-bundles', Prefix: 'web/' }));
    expect(first.Contents).toHaveLength(4);
  });

  it('stop removes its temporary directory and is safe to call twice; a given directory is kept', async () => {
    const other = await startS3();
    const client = s3Client(createClients({ s3Endpoint: other.endpoint, maxAttempts: 1 }), 'us-east-1');
    await seedBundle(client, 'bundles', '', 1);
    expect(existsSync(other.directory)).toBe(true);
    await other.stop();
    await other.stop();
    expect(existsSync(other.directory)).toBe(false);
    const kept = await startS3({ directory: server.directory });
    await kept.stop();
    expect(existsSync(server.directory)).toBe(true);
  });

  it('seedBundle refuses a bundle without parts', async () => {
    await expect(seedBundle(s3, 'ami-bundles', 'none', 0)).rejects.toThrow(RangeError);
  });
});
