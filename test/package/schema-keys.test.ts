import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CreateTagsCommand, DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { build, type Plugin } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../local/twin/clock.ts';
import { startTwin, type Twin } from '../../local/twin/twin.ts';
import { ROOT } from './packaged.ts';

/**
 * lib/build/esbuild-plugins.cjs rewrites the SDK's schema modules so esbuild can drop unused shapes. The rewritten
 * schemas must serialize and parse exactly as the SDK's own: an EC2 client bundled with the plugin and the SDK
 * unbundled make the same calls against the twin and get the same results.
 */

const plugins = createRequire(import.meta.url)('../../lib/build/esbuild-plugins.cjs') as Plugin[] & {
  literalSchemaKeys(text: string): string;
};
const REGION = 'us-east-1';
const work = mkdtempSync(join(tmpdir(), 'ami-dr-schema-keys-'));
let twin: Twin;
let imageId: string;

const CALLS = `
import { CreateTagsCommand, DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
export async function calls(endpoint, imageId) {
  const ec2 = new EC2Client({ region: '${REGION}', endpoint, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  await ec2.send(new CreateTagsCommand({ Resources: [imageId], Tags: [{ Key: 'bundled', Value: 'yes' }] }));
  const { Images } = await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'tag:bundled', Values: ['yes'] }] }));
  return Images;
}
`;

beforeAll(async () => {
  twin = await startTwin({ s3: false, clock: new ManualClock(Date.UTC(2026, 0, 1)) });
  imageId = twin.seed.image(REGION, { name: 'golden-1', tags: { team: 'platform' } });
}, 60_000);

afterAll(async () => {
  await twin?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('SDK schemas with literal keys', () => {
  it('turns constant computed keys into literal keys and leaves the rest', () => {
    const text = [
      'const _xN = "xmlName";',
      'export var A$ = [3, n0, _A, 0, [_x], [[0, { [_xN]: _m, [other]: 1 }]]];',
    ].join('\n');
    expect(plugins.literalSchemaKeys(text)).toContain('{ "xmlName": _m, [other]: 1 }');
  });

  it('bundles EC2 far smaller and makes the same calls with the same results as the SDK unbundled', async () => {
    const bundle = async (withPlugin: boolean, name: string) => {
      const result = await build({
        absWorkingDir: ROOT,
        stdin: { contents: CALLS, resolveDir: ROOT, loader: 'js' },
        bundle: true,
        format: 'esm',
        platform: 'node',
        target: 'node22',
        mainFields: ['module', 'main'],
        minify: true,
        banner: { js: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);" },
        plugins: withPlugin ? plugins : [],
        outfile: join(work, name),
        metafile: true,
        logLevel: 'silent',
      });
      return Object.values(result.metafile.outputs)[0]!.bytes;
    };
    const [shaken, whole] = await Promise.all([bundle(true, 'shaken.mjs'), bundle(false, 'whole.mjs')]);
    expect(whole - shaken).toBeGreaterThan(300 * 1024);

    const { calls } = (await import(pathToFileURL(join(work, 'shaken.mjs')).href)) as {
      calls(endpoint: string, imageId: string): Promise<unknown[]>;
    };
    const bundled = await calls(twin.endpoint, imageId);

    const ec2 = new EC2Client({
      region: REGION,
      endpoint: twin.endpoint,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    await ec2.send(new CreateTagsCommand({ Resources: [imageId], Tags: [{ Key: 'bundled', Value: 'yes' }] }));
    const { Images } = await ec2.send(
      new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'tag:bundled', Values: ['yes'] }] }),
    );

    expect(bundled).toHaveLength(1);
    expect(bundled).toEqual(Images);
    expect(bundled).toMatchObject([
      {
        ImageId: imageId,
        Name: 'golden-1',
        Tags: expect.arrayContaining([
          { Key: 'team', Value: 'platform' },
          { Key: 'bundled', Value: 'yes' },
        ]),
        BlockDeviceMappings: [
          expect.objectContaining({ Ebs: expect.objectContaining({ SnapshotId: expect.any(String) }) }),
        ],
      },
    ]);
  }, 120_000);
});

describe("the Recycle Bin client's credential chain", () => {
  const RBIN_CALLS = `
import { ListRulesCommand, RbinClient } from '@aws-sdk/client-rbin';
export async function listRules(endpoint) {
  const rbin = new RbinClient({ region: '${REGION}', endpoint });
  return (await rbin.send(new ListRulesCommand({ ResourceType: 'EBS_SNAPSHOT' }))).Rules;
}
`;

  it('is the one every other client uses: no second chain in the bundle, and credentials still come from it', async () => {
    const result = await build({
      absWorkingDir: ROOT,
      stdin: { contents: RBIN_CALLS, resolveDir: ROOT, loader: 'js' },
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: 'node22',
      mainFields: ['module', 'main'],
      banner: { js: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);" },
      plugins,
      outfile: join(work, 'rbin.mjs'),
      metafile: true,
      logLevel: 'silent',
    });
    const inputs = Object.keys(Object.values(result.metafile.outputs)[0]!.inputs);
    expect(
      inputs.filter((f) => /client-rbin[\\/]node_modules[\\/]@aws-sdk[\\/](credential-provider|client-s)/.test(f)),
    ).toEqual([]);

    // No credentials in the client's config: the default chain reads them from the environment.
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = 'test';
    process.env.AWS_SECRET_ACCESS_KEY = 'test';
    try {
      const { listRules } = (await import(pathToFileURL(join(work, 'rbin.mjs')).href)) as {
        listRules(endpoint: string): Promise<unknown[]>;
      };
      await expect(listRules(twin.endpoint)).resolves.toEqual([]);
    } finally {
      if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
      else process.env.AWS_ACCESS_KEY_ID = saved.id;
      if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
      else process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
    }
  }, 120_000);
});
