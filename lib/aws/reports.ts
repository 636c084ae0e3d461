import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';

/** What writing (and reading back) a report calls. */
export const REQUIRED_PERMISSIONS = ['s3:PutObject', 's3:GetObject'] as const;

/** Writes a run's report as JSON; returns its `s3://` location. */
export async function putJsonReport(s3: S3Client, bucket: string, key: string, body: unknown): Promise<string> {
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: JSON.stringify(body, null, 2),
      ContentType: 'application/json',
    }),
  );
  return `s3://${bucket}/${key}`;
}

/** Reads a JSON document written by putJsonReport (`s3://bucket/key`); calls s3:GetObject. */
export async function getJsonReport(s3: S3Client, location: string): Promise<unknown> {
  const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(location);
  if (!match) throw new Error(`not an s3:// location: ${location}`);
  const out = await s3.send(new GetObjectCommand({ Bucket: match[1], Key: match[2] }));
  return JSON.parse((await out.Body?.transformToString()) ?? 'null') as unknown;
}
