import { mkdtemp, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';
import {
  CopyObjectCommand,
  S3Client,
  CreateBucketCommand,
  GetObjectCommand,
  HeadBucketCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { escapeXml } from './http.ts';
import type { AuthRequest } from './iam.ts';

/**
 * S3 for the twin: s3rver on 127.0.0.1, storing objects in a directory of its own. It holds the bundles of
 * instance-store AMIs (a manifest and its parts), which retention deletes with the image.
 */
export interface S3Server {
  endpoint: string;
  /** Where s3rver keeps the objects. */
  directory: string;
  faults: S3Faults;
  stop(): Promise<void>;
}

/** Injected S3 failures, for fault trials. */
export interface S3Faults {
  /**
   * DeleteObject and DeleteObjects requests fail with 500 InternalError with this probability (0 turns it off);
   * `random` draws in [0, 1) (default Math.random: pass a seeded one for reproducible trials).
   */
  failDeletes(probability: number, random?: () => number): void;
}

interface KoaContext {
  method: string;
  querystring: string;
  status: number;
  body: unknown;
  type: string;
}

export interface S3Options {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Where objects are stored; default a fresh temporary directory, removed on stop. */
  directory?: string;
  /** IAM: the message refusing this caller's request, or undefined to serve it (see s3Requests). */
  authorize?: (accessKeyId: string, requests: AuthRequest[]) => string | undefined;
  /** The account owning every bucket (the `s3:ResourceAccount` of each request). */
  accountId?: string;
}

interface KoaContext {
  method: string;
  path: string;
  querystring: string;
  get(header: string): string;
  status: number;
  type: string;
  body: unknown;
}

/**
 * What S3 authorizes for a path-style REST request: the action by method, sub-resource and path, on the bucket or
 * object ARN. DeleteObjects (POST ?delete) is authorized as s3:DeleteObject on the bucket's objects (AWS checks each
 * key; the twin does not read the body before s3rver does).
 */
export function s3Requests(method: string, path: string, query: string, accountId: string): AuthRequest[] {
  const [bucket = '', ...rest] = path.replace(/^\//, '').split('/');
  const key = rest.join('/');
  const sub = new URLSearchParams(query);
  const context = { 's3:ResourceAccount': accountId };
  const on = (action: string, resource: string) => [{ action, resource, context }];
  if (!bucket) return on('s3:ListAllMyBuckets', '*');
  const bucketArn = `arn:aws:s3:::${bucket}`;
  const objectArn = `${bucketArn}/${decodeURIComponent(key)}`;
  if (!key) {
    if (method === 'PUT')
      return on(
        sub.has('ownershipControls')
          ? 's3:PutBucketOwnershipControls'
          : sub.has('acl')
            ? 's3:PutBucketAcl'
            : 's3:CreateBucket',
        bucketArn,
      );
    if (method === 'POST' && sub.has('delete')) return on('s3:DeleteObject', `${bucketArn}/*`);
    if (method === 'DELETE') return on('s3:DeleteBucket', bucketArn);
    if (sub.has('acl')) return on('s3:GetBucketAcl', bucketArn);
    // ListObjects(V2)'s prefix is the s3:prefix condition key (absent when the request names none).
    const prefix = sub.get('prefix');
    return [
      {
        action: 's3:ListBucket',
        resource: bucketArn,
        context: { ...context, ...(prefix ? { 's3:prefix': prefix } : {}) },
      },
    ];
  }
  if (method === 'PUT') return on(sub.has('acl') ? 's3:PutObjectAcl' : 's3:PutObject', objectArn);
  if (method === 'DELETE') return on('s3:DeleteObject', objectArn);
  return on(sub.has('acl') ? 's3:GetObjectAcl' : 's3:GetObject', objectArn);
}

interface S3rverAccounts {
  registry: Map<string, unknown>;
  DUMMY_ACCOUNT: unknown;
}

/**
 * s3rver knows one access key (`S3RVER`) and rejects any other before looking at signatures. The twin's callers
 * sign with whatever fake key they were given (test/test, or keys that name a role), so every key is made to
 * mean s3rver's one account, as every key means the twin's one account elsewhere.
 */
function acceptAnyAccessKey(): void {
  const accounts = createRequire(import.meta.url)('s3rver/lib/models/account.js') as S3rverAccounts;
  const registry = accounts.registry;
  if ((registry as { anyKey?: boolean }).anyKey) return;
  const get = registry.get.bind(registry);
  registry.get = (key: string) => get(key) ?? accounts.DUMMY_ACCOUNT;
  (registry as { anyKey?: boolean }).anyKey = true;
}

/** S3 DeleteObject(s) answer 500 InternalError with the fault's probability (read on every request). */
function injectDeleteFaults(fault: { probability: number; random: () => number }) {
  return async (ctx: KoaContext, next: () => Promise<void>): Promise<void> => {
    const isDelete = ctx.method === 'DELETE' || (ctx.method === 'POST' && /(^|&)delete(=|&|$)/.test(ctx.querystring));
    if (isDelete && fault.probability > 0 && fault.random() < fault.probability) {
      ctx.status = 500;
      ctx.type = 'application/xml';
      ctx.body =
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>' +
        '<Message>We encountered an internal error. Please try again. (injected fault)</Message></Error>';
      return;
    }
    await next();
  };
}

export async function startS3(options: S3Options = {}): Promise<S3Server> {
  acceptAnyAccessKey();
  const owned = options.directory === undefined;
  const directory = options.directory ?? (await mkdtemp(join(tmpdir(), 'ami-dr-s3-')));
  const server = new S3rver({
    address: '127.0.0.1',
    port: options.port ?? 0,
    silent: true,
    directory,
    // The SDK signs with the caller's (fake) credentials; s3rver would check them against its own.
    allowMismatchedSignatures: true,
    vhostBuckets: false,
  });
  const deleteFault = { probability: 0, random: Math.random };
  // In s3rver's (Koa's) chain after the authorization below: an injected fault answers before s3rver touches the store.
  (server as unknown as { middleware: unknown[] }).middleware.unshift(injectDeleteFaults(deleteFault));
  const authorize = options.authorize;
  if (authorize) {
    const accountId = options.accountId ?? '000000000000';
    // First in s3rver's (Koa's) chain: refuse before anything is read or written.
    (server as unknown as { middleware: unknown[] }).middleware.unshift(
      async (ctx: KoaContext, next: () => Promise<void>) => {
        const credential = /Credential=([^/,\s]+)\//.exec(ctx.get('authorization'));
        const refused = authorize(
          credential?.[1] ?? 'anonymous',
          s3Requests(ctx.method, ctx.path, ctx.querystring, accountId),
        );
        if (!refused) return next();
        ctx.status = 403;
        ctx.type = 'application/xml';
        ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>${escapeXml(refused)}</Message></Error>`;
      },
    );
  }
  const { port } = await server.run();
  let stopped = false;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    directory,
    faults: {
      failDeletes: (probability, random = Math.random) => {
        Object.assign(deleteFault, { probability, random });
      },
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await server.close();
      if (owned) await rm(directory, { recursive: true, force: true });
    },
  };
}

export interface BundleOptions {
  /** Bytes per part (default 64); parts hold deterministic filler so sizes and digests are real. */
  partBytes?: number;
  /** The bundle's image name in the manifest (default `image`, as ec2-bundle-vol names it). */
  imageName?: string;
  accountId?: string;
}

export interface Bundle {
  /** `bucket/prefix/image.manifest.xml`: what RegisterImage takes as `ImageLocation`. */
  imageLocation: string;
  manifestKey: string;
  partKeys: string[];
}

/**
 * Writes an instance-store bundle the way ec2-bundle-vol + ec2-upload-bundle do: `<prefix>/image.manifest.xml`
 * listing `parts/part[@index]/filename`, and the part objects next to it. Creates the bucket if needed.
 */
export async function seedBundle(
  s3: S3Client,
  bucket: string,
  prefix: string,
  parts: number,
  options: BundleOptions = {},
): Promise<Bundle> {
  if (!Number.isInteger(parts) || parts < 1) throw new RangeError(`a bundle has at least one part (got ${parts})`);
  await ensureBucket(s3, bucket);
  const name = options.imageName ?? 'image';
  const base = prefix.replace(/^\/+|\/+$/g, '');
  const keyOf = (file: string): string => (base ? `${base}/${file}` : file);
  const partBytes = options.partBytes ?? 64;
  const files: { filename: string; body: Buffer }[] = [];
  for (let index = 0; index < parts; index++) {
    const filename = `${name}.part.${String(index).padStart(2, '0')}`;
    files.push({ filename, body: Buffer.alloc(partBytes, `${bucket}/${keyOf(filename)}`) });
  }
  for (const file of files)
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: keyOf(file.filename), Body: file.body }));
  const manifestKey = keyOf(`${name}.manifest.xml`);
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: manifestKey,
      Body: manifestXml(name, files, options.accountId ?? '000000000000'),
      ContentType: 'text/xml',
    }),
  );
  return { imageLocation: `${bucket}/${manifestKey}`, manifestKey, partKeys: files.map((f) => keyOf(f.filename)) };
}

/** The twin's own S3 client (EC2 acting on the caller's behalf, as AWS's copy service does): no role, not refused. */
export function bundleClient(endpoint: string): S3Client {
  return new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    credentials: { accessKeyId: 'twin', secretAccessKey: 'twin' },
  });
}

/**
 * What CopyImage of an instance-store AMI does with its bundle: the manifest and every part it lists are copied to
 * the destination's `amis-for-<account>-in-<region>-<hash>` bucket (created if needed). A source whose manifest is
 * not in S3 (an image seeded without a bundle) has nothing to copy. Returns the keys written.
 */
export async function copyBundle(s3: S3Client, fromLocation: string, toLocation: string): Promise<string[]> {
  const split = (location: string) => {
    const [bucket = '', ...key] = location.split('/');
    return { bucket, key: key.join('/'), prefix: key.slice(0, -1).join('/') };
  };
  const from = split(fromLocation);
  const to = split(toLocation);
  let manifest: string;
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: from.bucket, Key: from.key }));
    manifest = (await out.Body?.transformToString()) ?? '';
  } catch {
    return [];
  }
  await ensureBucket(s3, to.bucket);
  const files = [...manifest.matchAll(/<filename>([^<]+)<\/filename>/g)].map((m) => m[1] ?? '');
  const join = (prefix: string, file: string) => (prefix ? `${prefix}/${file}` : file);
  const written: string[] = [];
  for (const [source, target] of [
    ...files.map((f) => [join(from.prefix, f), join(to.prefix, f)]),
    [from.key, to.key],
  ] as [string, string][]) {
    await s3.send(
      new CopyObjectCommand({ Bucket: to.bucket, Key: target, CopySource: `${from.bucket}/${encodeURI(source)}` }),
    );
    written.push(target);
  }
  return written;
}

/** The bundle manifest in the AMI tools' format (2007-10-10). */
export function manifestXml(name: string, parts: { filename: string; body: Buffer }[], accountId: string): string {
  const sha1 = (data: Buffer | string): string => createHash('sha1').update(data).digest('hex');
  const size = parts.reduce((sum, p) => sum + p.body.length, 0);
  const partXml = parts
    .map(
      (p, index) =>
        `<part index="${index}"><filename>${escapeXml(p.filename)}</filename><digest algorithm="SHA1">${sha1(p.body)}</digest></part>`,
    )
    .join('');
  return (
    '<?xml version="1.0" ?>\n<manifest><version>2007-10-10</version>' +
    '<bundler><name>ec2-ami-tools</name><version>1.5</version><release>7</release></bundler>' +
    '<machine_configuration><architecture>x86_64</architecture></machine_configuration>' +
    `<image><name>${escapeXml(name)}</name><user>${accountId}</user><type>machine</type>` +
    `<digest algorithm="SHA1">${sha1(Buffer.concat(parts.map((p) => p.body)))}</digest>` +
    `<size>${size}</size><bundled_size>${size}</bundled_size>` +
    `<parts count="${parts.length}">${partXml}</parts></image>` +
    `<signature>${sha1(`${name}:${size}`)}</signature></manifest>`
  );
}

/** Creates the bucket unless it exists. */
export async function ensureBucket(s3: S3Client, bucket: string): Promise<void> {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  }
}

/**
 * A state machine's Distributed Map storage on the twin's S3 (`s3` signed as the state machine's role, so its
 * ItemReader and ResultWriter are held to that role's policy as on AWS).
 */
export function mapRunStorage(s3: S3Client): { getObject: MapRunGet; putObject: MapRunPut } {
  return {
    getObject: async (bucket, key) => {
      const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return (await out.Body?.transformToString()) ?? '';
    },
    putObject: async (bucket, key, body) => {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: 'application/json' }));
    },
  };
}
type MapRunGet = (bucket: string, key: string) => Promise<string>;
type MapRunPut = (bucket: string, key: string, body: string) => Promise<void>;
