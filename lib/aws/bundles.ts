import { DeleteObjectsCommand, GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { awsErrorName } from '../domain/errors.ts';

/**
 * The S3 bundles behind instance-store AMIs: a manifest (`bucket/prefix/image.manifest.xml`) and the parts it
 * lists (`manifest/image/parts/part[@index]/filename`, bare names next to the manifest). Deregistering such an
 * image leaves them in S3; retention deletes exactly the manifest and its parts, nothing else in the bucket.
 */

/** What deleting bundles needs. */
export const REQUIRED_PERMISSIONS = ['s3:GetObject', 's3:DeleteObject'] as const;

/** The image location is not `bucket/key.manifest.xml`. */
export class InvalidImageLocationError extends Error {
  override name = 'InvalidImageLocationError';
}
/** The manifest is not XML, or not a bundle manifest we can trust to name its parts. */
export class InvalidManifestError extends Error {
  override name = 'InvalidManifestError';
}
/** The bucket or the manifest is not there (or not readable). */
export class BundleNotFoundError extends Error {
  override name = 'BundleNotFoundError';
}
/** S3 refused to delete some of the bundle's objects. */
export class BundleDeleteError extends Error {
  override name = 'BundleDeleteError';
  constructor(
    message: string,
    readonly failedKeys: string[],
    readonly deletedKeys: string[],
  ) {
    super(message);
  }
}

export interface BundleLocation {
  bucket: string;
  manifestKey: string;
  /** The manifest's "directory" (`prefix/`, or '' at the bucket root); parts live here. */
  prefix: string;
}

export interface BundleManifest {
  /** Full keys of the parts, in index order. */
  partKeys: string[];
  /** `image/bundled_size`, bytes, when the manifest says. */
  bundledBytes?: number;
}

const DELETE_BATCH = 1000;

export function parseImageLocation(imageLocation: string | undefined): BundleLocation {
  const location = (imageLocation ?? '').trim();
  const slash = location.indexOf('/');
  if (slash <= 0 || slash === location.length - 1 || !location.endsWith('.xml')) {
    throw new InvalidImageLocationError(`image location "${location}" is not bucket/prefix/image.manifest.xml`);
  }
  const bucket = location.slice(0, slash);
  const manifestKey = location.slice(slash + 1);
  const lastSlash = manifestKey.lastIndexOf('/');
  return { bucket, manifestKey, prefix: lastSlash < 0 ? '' : manifestKey.slice(0, lastSlash + 1) };
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  // Part file names like `image.part.00` must stay strings.
  parseTagValue: false,
  parseAttributeValue: false,
  isArray: (_name, jpath) => jpath === 'manifest.image.parts.part',
});

/**
 * Reads a bundle manifest. Refuses anything it cannot fully trust to name only this bundle's parts: not XML,
 * no `manifest/image/parts`, a `count` that disagrees with the parts listed, missing or duplicate indexes, or a
 * file name that is empty or reaches outside the manifest's prefix (contains `/` or is `.`/`..`).
 */
export function parseManifest(xml: string, location: BundleLocation): BundleManifest {
  const where = `s3://${location.bucket}/${location.manifestKey}`;
  const valid = XMLValidator.validate(xml);
  if (valid !== true)
    throw new InvalidManifestError(`manifest ${where} is not valid XML: ${valid.err.msg} (line ${valid.err.line})`);
  const doc = parser.parse(xml) as { manifest?: { image?: { parts?: unknown; bundled_size?: unknown } } };
  const image = doc.manifest?.image;
  const parts = image?.parts as { '@_count'?: string; part?: unknown[] } | undefined;
  if (!parts || typeof parts !== 'object')
    throw new InvalidManifestError(`manifest ${where} has no manifest/image/parts element`);
  const list = parts.part ?? [];
  const count = Number(parts['@_count']);
  if (!Number.isInteger(count) || count < 1)
    throw new InvalidManifestError(
      `manifest ${where}: parts/@count "${parts['@_count'] ?? ''}" is not a positive whole number`,
    );
  if (list.length !== count)
    throw new InvalidManifestError(`manifest ${where}: parts/@count says ${count} parts but ${list.length} are listed`);
  const byIndex: string[] = new Array(count);
  for (const entry of list) {
    const part = entry as { '@_index'?: string; filename?: unknown };
    const index = Number(part['@_index']);
    const filename = typeof part.filename === 'string' ? part.filename.trim() : '';
    if (!Number.isInteger(index) || index < 0 || index >= count)
      throw new InvalidManifestError(`manifest ${where}: part index "${part['@_index'] ?? ''}" is out of range`);
    if (byIndex[index] !== undefined)
      throw new InvalidManifestError(`manifest ${where}: part index ${index} is listed twice`);
    if (!filename || filename.includes('/') || filename === '.' || filename === '..') {
      throw new InvalidManifestError(
        `manifest ${where}: part ${index} has file name "${filename}", not a bare file name next to the manifest`,
      );
    }
    byIndex[index] = location.prefix + filename;
  }
  const bundled = Number(image?.bundled_size);
  return { partKeys: byIndex, ...(Number.isFinite(bundled) && bundled >= 0 ? { bundledBytes: bundled } : {}) };
}

/** Reads and parses the manifest of the bundle at `imageLocation`. Touches nothing. */
export async function readBundleManifest(
  s3: S3Client,
  imageLocation: string | undefined,
): Promise<{ location: BundleLocation; manifest: BundleManifest }> {
  const location = parseImageLocation(imageLocation);
  let xml: string;
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: location.bucket, Key: location.manifestKey }));
    xml = (await out.Body?.transformToString('utf8')) ?? '';
  } catch (error) {
    const name = awsErrorName(error) ?? 'Error';
    if (name === 'NoSuchBucket')
      throw new BundleNotFoundError(
        `bucket ${location.bucket} of bundle s3://${location.bucket}/${location.manifestKey} does not exist`,
        { cause: error },
      );
    if (name === 'NoSuchKey' || name === 'NotFound')
      throw new BundleNotFoundError(`manifest s3://${location.bucket}/${location.manifestKey} does not exist`, {
        cause: error,
      });
    if (name === 'AccessDenied')
      throw new BundleNotFoundError(
        `manifest s3://${location.bucket}/${location.manifestKey} is not readable (AccessDenied)`,
        { cause: error },
      );
    throw error;
  }
  return { location, manifest: parseManifest(xml, location) };
}

/**
 * Deletes the parts (DeleteObjects, 1,000 keys a call), then the manifest. Keys already gone count as deleted,
 * as S3 reports them, so running it twice is harmless. Returns the keys deleted and the calls it took; throws
 * BundleDeleteError naming the keys S3 refused.
 */
export async function deleteBundle(
  s3: S3Client,
  location: BundleLocation,
  manifest: BundleManifest,
): Promise<{ deletedKeys: string[]; calls: number }> {
  const deleted: string[] = [];
  let calls = 0;
  const remove = async (batch: string[]): Promise<void> => {
    calls++;
    const out = await s3.send(
      new DeleteObjectsCommand({
        Bucket: location.bucket,
        Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: false },
      }),
    );
    const errors = out.Errors ?? [];
    const failedKeys = new Set(errors.map((e) => e.Key ?? ''));
    for (const key of batch) if (!failedKeys.has(key)) deleted.push(key);
    if (errors.length > 0) {
      const named = errors.slice(0, 5).map((e) => `${e.Key ?? '?'} (${e.Code ?? 'Error'})`);
      throw new BundleDeleteError(
        `could not delete ${errors.length} object(s) of bundle s3://${location.bucket}/${location.manifestKey}: ${named.join(', ')}`,
        [...failedKeys],
        [...deleted],
      );
    }
  };
  // Parts first, the manifest on its own at the end: after any failure the manifest still names what is left.
  for (let i = 0; i < manifest.partKeys.length; i += DELETE_BATCH)
    await remove(manifest.partKeys.slice(i, i + DELETE_BATCH));
  await remove([location.manifestKey]);
  return { deletedKeys: deleted, calls };
}
