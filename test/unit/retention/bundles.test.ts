import { DeleteObjectsCommand, GetObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  BundleDeleteError,
  BundleNotFoundError,
  deleteBundle,
  InvalidImageLocationError,
  InvalidManifestError,
  parseImageLocation,
  parseManifest,
  readBundleManifest,
} from '../../../lib/aws/bundles.ts';

const s3 = mockClient(S3Client);
beforeEach(() => s3.reset());

const manifest = (parts: string, count: number | string = 2, extra = '') =>
  `<?xml version="1.0" ?>\n<manifest><version>2007-10-10</version><image><name>image</name>${extra}<parts count="${count}">${parts}</parts></image></manifest>`;
const part = (index: number | string, filename: string) =>
  `<part index="${index}"><filename>${filename}</filename><digest algorithm="SHA1">ab</digest></part>`;
const loc = parseImageLocation('bundles/web/v1/image.manifest.xml');
// GetObject's body as the SDK hands it over: a stream that can turn itself into a string.
const body = (text: string) => ({ transformToString: async () => text }) as never;
const s3Error = (name: string) => new S3ServiceException({ name, $fault: 'client', $metadata: {}, message: name });

describe('parseImageLocation', () => {
  it('splits bucket, manifest key and the prefix the parts live under', () => {
    expect(loc).toEqual({ bucket: 'bundles', manifestKey: 'web/v1/image.manifest.xml', prefix: 'web/v1/' });
    expect(parseImageLocation('b/image.manifest.xml')).toEqual({
      bucket: 'b',
      manifestKey: 'image.manifest.xml',
      prefix: '',
    });
  });

  it.each([undefined, '', 'image.manifest.xml', '/k.xml', 'bucket/', 'bucket/key.txt'])('refuses %s', (location) => {
    expect(() => parseImageLocation(location)).toThrow(InvalidImageLocationError);
  });
});

describe('parseManifest', () => {
  it('lists every part as a key next to the manifest, in index order, with the bundled size', () => {
    const xml = manifest(
      part(1, 'image.part.01') + part(0, 'image.part.00'),
      2,
      '<size>10</size><bundled_size>1234</bundled_size>',
    );
    expect(parseManifest(xml, loc)).toEqual({
      partKeys: ['web/v1/image.part.00', 'web/v1/image.part.01'],
      bundledBytes: 1234,
    });
  });

  it('reads a one-part manifest (a single element, not a list)', () => {
    expect(parseManifest(manifest(part(0, '00'), 1), loc).partKeys).toEqual(['web/v1/00']);
  });

  it.each([
    ['not XML', '<manifest><image>', /is not valid XML/],
    ['no parts element', '<manifest><image><name>x</name></image></manifest>', /has no manifest\/image\/parts/],
    ['count missing', manifest(part(0, 'a'), ''), /parts\/@count "" is not a positive whole number/],
    ['count disagrees', manifest(part(0, 'a'), 3), /says 3 parts but 1 are listed/],
    ['index out of range', manifest(part(0, 'a') + part(5, 'b')), /part index "5" is out of range/],
    ['index twice', manifest(part(0, 'a') + part(0, 'b')), /part index 0 is listed twice/],
    [
      'a path in a file name',
      manifest(part(0, 'a') + part(1, '../other/secret')),
      /part 1 has file name "..\/other\/secret"/,
    ],
    ['an empty file name', manifest(part(0, 'a') + part(1, '')), /part 1 has file name ""/],
  ])('refuses a manifest with %s', (_label, xml, message) => {
    expect(() => parseManifest(xml, loc)).toThrow(InvalidManifestError);
    expect(() => parseManifest(xml, loc)).toThrow(message);
  });
});

describe('readBundleManifest', () => {
  it('reads the manifest at the image location', async () => {
    s3.on(GetObjectCommand).resolves({ Body: body(manifest(part(0, 'p0') + part(1, 'p1'))) });
    const { manifest: m } = await readBundleManifest(new S3Client({}), 'bundles/web/v1/image.manifest.xml');
    expect(m.partKeys).toEqual(['web/v1/p0', 'web/v1/p1']);
    expect(s3).toHaveReceivedCommandWith(GetObjectCommand, { Bucket: 'bundles', Key: 'web/v1/image.manifest.xml' });
  });

  it.each([
    ['NoSuchBucket', /bucket bundles of bundle s3:\/\/bundles\/web\/v1\/image.manifest.xml does not exist/],
    ['NoSuchKey', /manifest s3:\/\/bundles\/web\/v1\/image.manifest.xml does not exist/],
    ['AccessDenied', /is not readable/],
  ])('turns %s into a clear BundleNotFoundError', async (code, message) => {
    s3.on(GetObjectCommand).rejects(s3Error(code));
    const read = readBundleManifest(new S3Client({}), 'bundles/web/v1/image.manifest.xml');
    await expect(read).rejects.toThrow(BundleNotFoundError);
    await expect(readBundleManifest(new S3Client({}), 'bundles/web/v1/image.manifest.xml')).rejects.toThrow(message);
  });
});

describe('deleteBundle', () => {
  it('deletes the parts in batches of 1,000, then the manifest on its own', async () => {
    s3.on(DeleteObjectsCommand).resolves({});
    const partKeys = Array.from({ length: 1500 }, (_, i) => `web/v1/p${i}`);
    const out = await deleteBundle(new S3Client({}), loc, { partKeys });
    expect(out.calls).toBe(3);
    const calls = s3.commandCalls(DeleteObjectsCommand).map((c) => c.args[0].input.Delete?.Objects?.map((o) => o.Key));
    expect(calls.map((c) => c?.length)).toEqual([1000, 500, 1]);
    expect(calls[2]).toEqual(['web/v1/image.manifest.xml']);
    expect(out.deletedKeys).toHaveLength(1501);
  });

  it('stops before the manifest when a part cannot be deleted, naming what is left', async () => {
    s3.on(DeleteObjectsCommand).resolves({ Errors: [{ Key: 'web/v1/p1', Code: 'AccessDenied' }] });
    const error = await deleteBundle(new S3Client({}), loc, { partKeys: ['web/v1/p0', 'web/v1/p1'] }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(BundleDeleteError);
    expect((error as BundleDeleteError).message).toMatch(
      /could not delete 1 object\(s\).*web\/v1\/p1 \(AccessDenied\)/,
    );
    expect((error as BundleDeleteError).deletedKeys).toEqual(['web/v1/p0']);
    expect(s3).toHaveReceivedCommandTimes(DeleteObjectsCommand, 1);
  });
});
